"""tlearn: learn — and do — transfer learning in PyTorch.

    import tlearn
    from tlearn import data, models, train
    tlearn.seed_everything(0)
    net = models.DigitNet()
    train.fit(net, data.load_domain("synth", split="train"), epochs=3)
"""

from tlearn.runtime import cache_dir, data_dir, get_device, seed_everything

__version__ = "0.1.0"

__all__ = ["__version__", "get_device", "seed_everything", "cache_dir", "data_dir"]
