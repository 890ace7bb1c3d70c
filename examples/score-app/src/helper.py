"""A module of the source directory that score.py imports."""


def predict(model, row):
    return sum(c * x for c, x in zip(model["coef"], row)) + model["bias"]
