"""Plain data between a student's kernel and the grader's judge: JSON with raw array buffers.

Only plain values travel as values: None, bools, numbers, strings, bytes, numpy arrays and scalars
of numeric dtypes, torch tensors (as their numbers), numpy Generators (as their state), and
lists, tuples and dicts of these. Anything else travels as a reference (`{"$ref": id}`) that the
receiving side resolves with the `ref_of` / `object_of` functions it is given. Nothing is pickled,
so a message can carry no code and no object with behaviour of its own.
"""
import json
import struct

import numpy as np

DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"}
MAX_MESSAGE = 256 << 20   # bytes of one message
MAX_DEPTH = 32


class WireError(Exception):
    """A message that breaks the protocol (too big, too deep, malformed)."""


def _torch_tensor_type():
    import sys
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None)


def encode(value, ref_of, buffers, depth=0):
    """A JSON-able tree for `value`; array bytes are appended to `buffers`."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and type(value) in (int, float):
        return value
    if type(value) is complex:
        return {"$complex": [value.real, value.imag]}
    if type(value) is bytes:
        buffers.append(value)
        return {"$bytes": len(buffers) - 1}
    if isinstance(value, np.ndarray) and type(value) is np.ndarray and value.dtype.name in DTYPES:
        buffers.append(np.ascontiguousarray(value).tobytes())
        return {"$nd": [value.dtype.str, list(value.shape), len(buffers) - 1]}
    if isinstance(value, np.generic) and type(value).__module__ == "numpy" and value.dtype.name in DTYPES:
        buffers.append(value.tobytes())
        return {"$scalar": [value.dtype.str, len(buffers) - 1]}
    if type(value) is np.random.Generator:
        bits = value.bit_generator
        return {"$rng": [type(bits).__name__, encode(bits.state, ref_of, buffers, depth + 1)]}
    tensor = _torch_tensor_type()
    if tensor is not None and type(value) is tensor and not value.requires_grad:
        array = value.detach().cpu()
        array = (array.float() if array.dtype.is_floating_point and array.dtype.itemsize < 4 else array).numpy()
        return {"$tensor": [str(value.dtype), encode(np.array(array), ref_of, buffers, depth + 1)]}
    if type(value) in (list, tuple):
        items = [encode(v, ref_of, buffers, depth + 1) for v in value]
        return items if type(value) is list else {"$tuple": items}
    if type(value) is dict:
        return {"$dict": [[encode(k, ref_of, buffers, depth + 1), encode(v, ref_of, buffers, depth + 1)]
                          for k, v in value.items()]}
    return ref_of(value)


def decode(tree, buffers, object_of, depth=0):
    """The value a tree stands for; references are resolved with `object_of(tree)`."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if isinstance(tree, list):
        return [decode(t, buffers, object_of, depth + 1) for t in tree]
    if not isinstance(tree, dict) or len(tree) != 1:
        raise WireError(f"malformed value {str(tree)[:80]}")
    (kind, body), = tree.items()
    if kind == "$tuple":
        return tuple(decode(t, buffers, object_of, depth + 1) for t in body)
    if kind == "$dict":
        return {_hashable(decode(k, buffers, object_of, depth + 1)): decode(v, buffers, object_of, depth + 1)
                for k, v in body}
    if kind == "$nd":
        dtype, shape, index = body
        return _array(dtype, shape, buffers[index])
    if kind == "$scalar":
        dtype, index = body
        return _array(dtype, [], buffers[index])[()]
    if kind == "$complex":
        return complex(*body)
    if kind == "$bytes":
        return bytes(buffers[body])
    if kind == "$rng":
        name, state = body
        if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
            raise WireError(f"unknown bit generator {name!r}")
        rng = np.random.Generator(getattr(np.random, name)())
        rng.bit_generator.state = decode(state, buffers, object_of, depth + 1)
        return rng
    if kind == "$tensor":
        import torch
        dtype, array = body
        return torch.from_numpy(decode(array, buffers, object_of, depth + 1))
    return object_of(tree)


def _hashable(key):
    if isinstance(key, (list, dict, np.ndarray)):
        raise WireError("dict keys must be plain scalars or tuples")
    return key


def _array(dtype, shape, data):
    dtype = np.dtype(dtype)
    if dtype.name not in DTYPES or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise WireError(f"bad array {dtype} {shape}")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
        raise WireError("array size does not match its bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def send(sock, message, buffers=()):
    """Write one message (a JSON-able dict plus buffers) to a stream socket."""
    header = json.dumps({"m": message, "sizes": [len(b) for b in buffers]}).encode()
    sock.sendall(struct.pack("!Q", len(header)) + header)
    for buffer in buffers:
        sock.sendall(buffer)


def receive(sock):
    """(message, buffers) of the next message; WireError when it is too big or malformed."""
    size, = struct.unpack("!Q", _read(sock, 8))
    if size > MAX_MESSAGE:
        raise WireError("message too big")
    try:
        header = json.loads(_read(sock, size))
        sizes = [int(s) for s in header["sizes"]]
        message = header["m"]
    except (ValueError, KeyError, TypeError) as error:
        raise WireError(f"malformed message ({error})") from None
    if sum(sizes) > MAX_MESSAGE or min(sizes, default=0) < 0:
        raise WireError("message too big")
    return message, [_read(sock, n) for n in sizes]


def _read(sock, n):
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
