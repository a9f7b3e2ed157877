"""Graphviz drawings (computational graphs, torchviz) that degrade to advice when `dot` is missing."""
import shutil

INSTALL_HINT = ("Graphviz's `dot` program is not installed, so the graph is not drawn. Install it with "
                "`sudo apt-get install graphviz` (Debian/Ubuntu, Colab), `brew install graphviz` (macOS) "
                "or `conda install -c conda-forge python-graphviz`, then restart the kernel.")


def graphviz_available():
    """True when the Graphviz `dot` binary can be run."""
    return shutil.which("dot") is not None


_advised = False


def show(graph):
    """Return a graphviz object for Jupyter to display, or say how to install Graphviz and return None."""
    global _advised
    if not graphviz_available():
        print("(graph not drawn: Graphviz is missing)" if _advised else INSTALL_HINT)
        _advised = True
        return None
    return graph


def torch_graph(output, params=None):
    """torchviz's drawing of the autograd graph that produced `output` (None, with advice, without dot)."""
    from torchviz import make_dot

    return show(make_dot(output, params=dict(params or {})))
