"Fixtures shared by the test modules."
import pytest, torch

@pytest.fixture(scope='module')
def one_thread():
    """Tiny networks: one thread is faster, and spares the other workers of a busy 2-core machine. Use it per module,
    `pytestmark = pytest.mark.usefixtures('one_thread')`, so that module-scoped fixtures run with it too."""
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
