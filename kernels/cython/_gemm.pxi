# SciPy's BLAS GEMM for the kernels that run matrix products inside their OpenMP threads
# (included textually by _conv.pyx and _winograd.pyx; each module holds its own pointers,
# which kernels/cython/_blas.py:connect sets through set_blas).

from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer

# Fortran BLAS GEMM, as scipy.linalg.cython_blas exports it (column-major, arguments by pointer)
ctypedef void (*sgemm_t)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*,
                         float*, float*, int*) noexcept nogil
ctypedef void (*dgemm_t)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*,
                         double*, double*, int*) noexcept nogil
cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL


def set_blas(sgemm_capsule, dgemm_capsule):
    """Use the GEMMs in these capsules (``scipy.linalg.cython_blas.__pyx_capi__``)."""
    global _sgemm, _dgemm
    _sgemm = <sgemm_t>PyCapsule_GetPointer(sgemm_capsule, PyCapsule_GetName(sgemm_capsule))
    _dgemm = <dgemm_t>PyCapsule_GetPointer(dgemm_capsule, PyCapsule_GetName(dgemm_capsule))


def have_blas():
    """Whether set_blas was called, i.e. the kernels that call GEMM may run."""
    return _sgemm != NULL and _dgemm != NULL


cdef inline void gemm_rows(char trans_a, char trans_b, int m, int n, int k, const floating* a, int lda,
                           const floating* b, int ldb, floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major C (m, n) = op(A) (m, k) @ op(B) (k, n) + beta C, for row-major callers.

    A row-major matrix is the column-major matrix of its transpose, so the callers
    compute row-major C^T = B^T A^T by passing their operands swapped.
    """
    cdef floating alpha = 1
    if floating is float:
        _sgemm(&trans_a, &trans_b, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        _dgemm(&trans_a, &trans_b, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)
