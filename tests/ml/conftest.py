import pytest

from pot.ml import make_dataset


@pytest.fixture(scope="session")
def digits():
    """(train npz bytes, test npz bytes) of the digits images."""
    return make_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_seq():
    return make_dataset("digits-seq", seed=0)
