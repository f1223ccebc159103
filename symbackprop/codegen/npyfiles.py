"""Read .npy and .npz arrays without trusting their headers (self-contained: numpy + stdlib only).

np.load allocates the array a header claims before it reads a byte of it, so a 100-byte file
claiming the shape (10**12, 4) ends in a MemoryError, and it takes a file that is neither a .npy
file nor a zip archive for pickled data (its message suggests allow_pickle). These readers
compare the size a header claims with the bytes there are first, and raise ValueError with one
line: the messages of the C program's .npy reader where it has one. Every generated NumPy module
includes the functions below verbatim; the C target's Python loader imports them.
"""

import io
import math
import zipfile

import numpy as np

from ..safe_io import MAX_FILE_BYTES, read_bytes

NPY_VERSIONS = (b"\x01\x00", b"\x02\x00", b"\x03\x00")  # the format versions np.save writes
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive, or an empty one (as np.load checks)


def npy_stream(f, size):
    """The array of the .npy file open in f, which holds size bytes from its start."""
    magic = f.read(8)
    if magic[:6] != b"\x93NUMPY" or magic[6:] not in NPY_VERSIONS:
        raise ValueError("not a .npy file of version 1 to 3")
    fmt = np.lib.format
    read = fmt.read_array_header_1_0 if magic[6] == 1 else fmt.read_array_header_2_0
    try:  # a header is a dict literal that numpy parses and checks: any failure is a bad header
        shape, fortran_order, dtype = read(f)
    except OSError:
        raise
    except Exception:
        raise ValueError("bad .npy header") from None
    if min(shape, default=0) < 0:
        raise ValueError("bad .npy header")
    if dtype.hasobject:
        raise ValueError("object arrays are not supported")
    have, need = size - f.tell(), math.prod(shape) * dtype.itemsize
    if have < need:
        raise ValueError(f"{have} data bytes for shape {shape}, expected {need}")
    data = f.read(need)
    if len(data) < need:  # a zip member shorter than its directory says
        raise ValueError(f"{len(data)} data bytes for shape {shape}, expected {need}")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def npy_array(path):
    """The array of a .npy file (read as safe_io reads: bounded, without blocking)."""
    data = read_bytes(path, MAX_FILE_BYTES, magic=b"\x93NUMPY", kind=".npy file of version 1 to 3")
    return npy_stream(io.BytesIO(data), len(data))


def npz_arrays(path, names):
    """{name: array} for those of names a .npz file holds (a zip archive of NAME.npy files);
    refused when its members would unpack to more than MAX_FILE_BYTES."""
    data = read_bytes(
        path, MAX_FILE_BYTES, magic=b"PK", kind=".npz file (a zip archive of .npy files)"
    )
    if data[:4] not in ZIP_MAGIC:
        raise ValueError("not a .npz file (a zip archive of .npy files)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(info.file_size for info in z.infolist()) > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes uncompressed")
            members = {info.filename: info for info in z.infolist()}
            arrays = {}
            for name in names:
                info = members.get(f"{name}.npy")
                if info is not None:
                    with z.open(info) as f:
                        arrays[name] = npy_stream(f, info.file_size)
            return arrays
    except (OSError, ValueError):
        raise
    except Exception as exc:  # zipfile, zlib, bz2 and lzma each raise their own for a bad archive
        raise ValueError(f"damaged .npz archive ({exc})") from None


def npz_data(path):
    """X and T (or integer labels y) of a .npz file of training data, as float64 arrays."""
    arrays = npz_arrays(path, ("X", "T", "y"))
    if "X" not in arrays or not {"T", "y"} & set(arrays):
        raise ValueError("needs the arrays X and T (or y)")
    targets = arrays["T"] if "T" in arrays else arrays["y"]
    return np.asarray(arrays["X"], dtype=np.float64), np.asarray(targets, dtype=np.float64)
