"Fixtures shared by the test modules."
import pytest, torch

@pytest.fixture
def one_thread():
    "Tiny networks: one thread is faster, and spares the other workers of a busy 2-core machine."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
