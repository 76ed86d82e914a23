"""Lesson 02, "Your turn": the cosine k-nearest-neighbour classifier."""

import torch


def my_knn_predict(Z_train, y_train, Z_test, k):
    a = Z_train / Z_train.norm(dim=1, keepdim=True)  # unit-length rows: only direction counts
    b = Z_test / Z_test.norm(dim=1, keepdim=True)
    similarity = b @ a.T  # N_test × N_train cosine similarities
    nearest = similarity.topk(k, dim=1).indices  # the k most similar training rows
    votes = torch.nn.functional.one_hot(y_train[nearest], int(y_train.max()) + 1).sum(1)
    return votes.argmax(1)  # the most frequent label among the k
