"""Lesson 07, "Your turn": a label-preserving augmentation for upright product photos."""

from torchvision.transforms import v2

my_augment = v2.Compose(
    [
        v2.RandomResizedCrop(32, scale=(0.7, 1.0), ratio=(0.85, 1.15), antialias=True),
        v2.RandomHorizontalFlip(p=0.5),  # a left shoe mirrored is a right shoe: same class
        v2.ColorJitter(brightness=0.3, contrast=0.3),
    ]
)
