// RAII ownership of HDF5 identifiers and small helpers for attributes.
//
// Every helper throws Hdf5Error (with HDF5's error stack) or InputError naming the file and the
// dataset/attribute concerned.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace textscale::h5 {

// Owns one hid_t and closes it with the matching H5*close call.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(other.release()) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.release();
    }
    return *this;
  }
  ~Handle() { reset(); }

  [[nodiscard]] hid_t get() const { return id_; }
  [[nodiscard]] bool valid() const { return id_ >= 0; }
  hid_t release() {
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }
  // Closes now; returns HDF5's status so that a failing close of a file (a final flush that
  // hits a full disk) can be reported instead of being lost in a destructor.
  herr_t close();
  void reset() { (void)close(); }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Keeps HDF5 from closing still-open objects in an atexit handler. Call first, before any other
// HDF5 call. After a failed close (a full disk), HDF5 1.10 crashes in that handler; textscale
// closes every file explicitly, so nothing is lost by skipping it.
void skip_library_teardown_at_exit();

// Turns off HDF5's automatic error printing; errors are reported through Hdf5Error instead.
void silence_automatic_error_printing();

// --- attributes (on a file, group or dataset) ------------------------------------------------
void write_attribute(hid_t object, const std::string& name, const std::string& value);
void write_attribute(hid_t object, const std::string& name, std::int64_t value);
void write_attribute(hid_t object, const std::string& name, double value);
void write_attribute(hid_t object, const std::string& name, const std::vector<std::string>& values);

[[nodiscard]] bool has_attribute(hid_t object, const std::string& name);
[[nodiscard]] std::string read_string_attribute(hid_t object, const std::string& name);
[[nodiscard]] std::int64_t read_int_attribute(hid_t object, const std::string& name);
[[nodiscard]] std::vector<std::string> read_string_list_attribute(hid_t object, const std::string& name);

// Variable-length UTF-8 string type (caller owns the handle).
[[nodiscard]] Handle utf8_vlen_string_type();

// Reads a 1-D dataset of variable-length strings.
[[nodiscard]] std::vector<std::string> read_string_dataset(hid_t file, const std::string& name);
// Writes a 1-D dataset of variable-length UTF-8 strings.
void write_string_dataset(hid_t file, const std::string& name, const std::vector<std::string>& values);

}  // namespace textscale::h5
