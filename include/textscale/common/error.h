// Typed exceptions and the per-library check macros.
//
// Expected failures (a bad input row, an optional dataset that is absent) are values, not
// exceptions. Exceptions carry what failed and where; `main` is the one place that catches them.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace textscale {

// Base of every error textscale throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The user's input or configuration is wrong (bad option, malformed file, missing dataset).
class InputError : public Error {
 public:
  using Error::Error;
};

// A command-line option's value is outside its range or choices, or options exclude each other or
// do not apply (to the model, or to the data's kind): the command line is wrong, exit status 2 as
// for an unknown option. Thrown where the value is checked, before any file is read or written.
class OptionError : public Error {
 public:
  using Error::Error;
};

// An operating-system call failed (open, read, write, rename): message includes strerror.
class IoError : public Error {
 public:
  using Error::Error;
};

// An HDF5 call failed: message names the call, the source location and HDF5's own error stack.
class Hdf5Error : public Error {
 public:
  using Error::Error;
};

// A collective between ranks failed or timed out (a rank died, or diverged).
class CommError : public Error {
 public:
  using Error::Error;
};

// A CUDA, cuBLAS, cuDNN or NCCL call failed: the message names the call, the source location and
// the library's message.
class CudaError : public Error {
 public:
  using Error::Error;
};

// Formats "what: strerror(errno)".
[[nodiscard]] std::string errno_message(const std::string& what, int error_number);

// Runs `fn`, naming `path` in what it throws: helpers below a file reader (HDF5 calls, attribute
// readers) do not know which file they read. An InputError that already starts with the path
// passes unchanged; any other textscale error becomes an InputError "path: [what: ]message".
template <typename Fn>
auto naming_file(const std::string& path, const std::string& what, Fn fn) {
  try {
    return fn();
  } catch (const InputError& error) {
    if (std::string_view(error.what()).starts_with(path)) throw;
    throw InputError(path + ": " + error.what());
  } catch (const Error& error) {
    throw InputError(path + ": " + (what.empty() ? std::string() : what + ": ") + error.what());
  }
}

namespace detail {
[[noreturn]] void throw_hdf5_error(const char* expression, const char* file, int line);
}  // namespace detail

}  // namespace textscale

// Checks an HDF5 call that returns a negative value (herr_t / hid_t) on failure.
#define TS_CHECK_HDF5(expression)                                                                     \
  ([&]() {                                                                                            \
    auto ts_check_result_ = (expression);                                                             \
    if (ts_check_result_ < 0) ::textscale::detail::throw_hdf5_error(#expression, __FILE__, __LINE__); \
    return ts_check_result_;                                                                          \
  }())
