# Window bounds shared by the convolution and pooling loops (included textually by _conv.pyx and
# _pool.pyx). Along one axis a window starts at ``offset`` (negative inside the padding) and its
# taps sit at offset + t * step; only the taps inside [0, size) touch the input.

cdef inline Py_ssize_t first_valid(Py_ssize_t offset, Py_ssize_t step) noexcept nogil:
    """Smallest t >= 0 with t*step + offset >= 0 (step > 0)."""
    if offset >= 0:
        return 0
    return (-offset + step - 1) // step


cdef inline Py_ssize_t end_valid(Py_ssize_t offset, Py_ssize_t step, Py_ssize_t size,
                                 Py_ssize_t count) noexcept nogil:
    """One past the largest t < count with t*step + offset < size; never below first_valid, so
    range(first_valid, end_valid) is empty when no tap lands inside."""
    cdef Py_ssize_t end
    if offset >= size:
        return first_valid(offset, step)
    end = (size - 1 - offset) // step + 1
    if end > count:
        end = count
    return end if end > first_valid(offset, step) else first_valid(offset, step)
