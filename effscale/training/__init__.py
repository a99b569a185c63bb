"""Training one network: the loop and what it is made of.

    loop.py         train(): one run, from a Variant, a dataset and a Recipe to a result
    optim.py        the optimizer and the learning-rate schedule
    evaluation.py   top-1 / top-5 on a held-out set, BN statistics recomputed
    checkpoint.py   a run's checkpoint: saved per epoch, resumed, loaded to fine-tune from
    compiling.py    whether and how torch.compile is used
    device.py       the device a run trains on, and the environment recorded beside it

The recipe (effscale.recipe) and the machine's description (effscale.hardware) stay at the
package root: plans and estimates use them without training anything.
"""
