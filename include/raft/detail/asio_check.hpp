// raft/detail/asio_check.hpp - refuses to compile a translation unit whose Asio configuration
// would disagree with other translation units of the same program.
//
// Asio 1.22 decides between aligned_alloc/free and operator new/delete for its recycled memory
// by looking at a libstdc++ macro when asio/detail/config.hpp is first included. A translation
// unit that includes an Asio header before any standard header decides differently from one
// that does not, and memory allocated in one is freed the wrong way in the other (ASan reports
// alloc-dealloc-mismatch; without ASan it is undefined behaviour). Include a standard header
// (any, e.g. <cstddef>) before the first Asio header, or define ASIO_DISABLE_STD_ALIGNED_ALLOC
// for the whole program.
#pragma once

#include <cstddef>

#include <asio/detail/config.hpp>

#if defined(__GLIBCXX__) && defined(_GLIBCXX_HAVE_ALIGNED_ALLOC) && \
    !defined(ASIO_HAS_STD_ALIGNED_ALLOC) && !defined(ASIO_DISABLE_STD_ALIGNED_ALLOC)
#error "An Asio header was included before any standard header in this translation unit: include a standard header (e.g. <cstddef>) first, or Asio's allocations will not match other translation units (see raft/detail/asio_check.hpp)"
#endif
