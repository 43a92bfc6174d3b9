#include "textscale/common/hdf5.h"

#include <cstring>
#include <sstream>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/common/log.h"

namespace textscale {

std::string errno_message(const std::string& what, int error_number) {
  return what + ": " + std::strerror(error_number);
}

namespace detail {
namespace {
herr_t collect_frame(unsigned, const H5E_error2_t* frame, void* client_data) {
  auto* frames = static_cast<std::vector<std::string>*>(client_data);
  std::string text = std::string(frame->func_name ? frame->func_name : "?") + ": " + (frame->desc ? frame->desc : "");
  for (char& c : text)
    if (c == '\n') c = ' ';
  frames->push_back(std::move(text));
  return 0;
}
}  // namespace

void throw_hdf5_error(const char* expression, const char* file, int line) {
  // HDF5's stack repeats itself; the outermost frame says what failed and the innermost why (for
  // I/O, with the system's message). The user reads why; the call, the source line and the stack
  // go to the debug log (--log-level debug).
  std::vector<std::string> frames;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_frame, &frames);
  H5Eclear2(H5E_DEFAULT);
  std::ostringstream stack;
  for (const auto& frame : frames) stack << "\n  " << frame;
  TS_LOG(debug, "HDF5 call failed: " << expression << " (" << file << ":" << line << ")" << stack.str());
  std::string reason = frames.empty() ? std::string("the HDF5 library reported an error") : frames.front();
  reason = reason.substr(reason.find(": ") == std::string::npos ? 0 : reason.find(": ") + 2);  // no function name
  if (frames.size() > 1) {
    std::string cause = frames.back();
    const std::size_t system = cause.find("error message = '");
    if (system != std::string::npos) {
      const std::size_t begin = system + 17;
      reason = cause.substr(begin, cause.find('\'', begin) - begin);  // the system's own words
    } else {
      reason += " (" + cause.substr(cause.find(": ") == std::string::npos ? 0 : cause.find(": ") + 2) + ")";
    }
  }
  throw Hdf5Error(reason.substr(0, 300));
}
}  // namespace detail

namespace h5 {

herr_t Handle::close() {
  if (id_ < 0) return 0;
  hid_t id = release();
  switch (H5Iget_type(id)) {
    case H5I_FILE:
      return H5Fclose(id);
    case H5I_GROUP:
      return H5Gclose(id);
    case H5I_DATASET:
      return H5Dclose(id);
    case H5I_DATASPACE:
      return H5Sclose(id);
    case H5I_DATATYPE:
      return H5Tclose(id);
    case H5I_ATTR:
      return H5Aclose(id);
    case H5I_GENPROP_LST:
      return H5Pclose(id);
    default:
      return H5Idec_ref(id);
  }
}

void skip_library_teardown_at_exit() {
  H5dont_atexit();
}

void silence_automatic_error_printing() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

Handle utf8_vlen_string_type() {
  Handle type(TS_CHECK_HDF5(H5Tcopy(H5T_C_S1)));
  TS_CHECK_HDF5(H5Tset_size(type.get(), H5T_VARIABLE));
  TS_CHECK_HDF5(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  return type;
}

namespace {
void write_scalar_attribute(hid_t object, const std::string& name, hid_t type, const void* value) {
  if (H5Aexists(object, name.c_str()) > 0) TS_CHECK_HDF5(H5Adelete(object, name.c_str()));
  Handle space(TS_CHECK_HDF5(H5Screate(H5S_SCALAR)));
  Handle attribute(TS_CHECK_HDF5(H5Acreate2(object, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT)));
  TS_CHECK_HDF5(H5Awrite(attribute.get(), type, value));
}

Handle open_attribute(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) throw InputError("attribute '" + name + "' is missing");
  return Handle(TS_CHECK_HDF5(H5Aopen(object, name.c_str(), H5P_DEFAULT)));
}
}  // namespace

void write_attribute(hid_t object, const std::string& name, const std::string& value) {
  // Variable-length UTF-8 scalar: h5py returns it as str, h5dump prints it verbatim.
  Handle type = utf8_vlen_string_type();
  const char* pointer = value.c_str();
  write_scalar_attribute(object, name, type.get(), &pointer);
}

void write_attribute(hid_t object, const std::string& name, std::int64_t value) {
  write_scalar_attribute(object, name, H5T_NATIVE_INT64, &value);
}

void write_attribute(hid_t object, const std::string& name, double value) {
  write_scalar_attribute(object, name, H5T_NATIVE_DOUBLE, &value);
}

void write_attribute(hid_t object, const std::string& name, const std::vector<std::string>& values) {
  if (H5Aexists(object, name.c_str()) > 0) TS_CHECK_HDF5(H5Adelete(object, name.c_str()));
  Handle type = utf8_vlen_string_type();
  const hsize_t count = values.size();
  Handle space(TS_CHECK_HDF5(H5Screate_simple(1, &count, nullptr)));
  Handle attribute(TS_CHECK_HDF5(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT)));
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& v : values) pointers.push_back(v.c_str());
  if (!pointers.empty()) TS_CHECK_HDF5(H5Awrite(attribute.get(), type.get(), pointers.data()));
}

bool has_attribute(hid_t object, const std::string& name) {
  return H5Aexists(object, name.c_str()) > 0;
}

std::string read_string_attribute(hid_t object, const std::string& name) {
  Handle attribute = open_attribute(object, name);
  Handle type(TS_CHECK_HDF5(H5Aget_type(attribute.get())));
  if (H5Tget_class(type.get()) != H5T_STRING) throw InputError("attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle memory = utf8_vlen_string_type();
    char* value = nullptr;
    TS_CHECK_HDF5(H5Aread(attribute.get(), memory.get(), &value));
    std::string result = value ? value : "";
    H5free_memory(value);
    return result;
  }
  const size_t size = H5Tget_size(type.get());
  std::string buffer(size, '\0');
  TS_CHECK_HDF5(H5Aread(attribute.get(), type.get(), buffer.data()));
  buffer.resize(std::strlen(buffer.c_str()));
  return buffer;
}

std::int64_t read_int_attribute(hid_t object, const std::string& name) {
  Handle attribute = open_attribute(object, name);
  Handle type(TS_CHECK_HDF5(H5Aget_type(attribute.get())));
  if (H5Tget_class(type.get()) != H5T_INTEGER) throw InputError("attribute '" + name + "' is not an integer");
  std::int64_t value = 0;
  TS_CHECK_HDF5(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value));
  return value;
}

std::vector<std::string> read_string_list_attribute(hid_t object, const std::string& name) {
  Handle attribute = open_attribute(object, name);
  Handle space(TS_CHECK_HDF5(H5Aget_space(attribute.get())));
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  std::vector<char*> pointers(static_cast<size_t>(count), nullptr);
  Handle memory = utf8_vlen_string_type();
  if (count > 0) TS_CHECK_HDF5(H5Aread(attribute.get(), memory.get(), pointers.data()));
  std::vector<std::string> values;
  for (char* p : pointers) values.emplace_back(p ? p : "");
  if (count > 0) TS_CHECK_HDF5(H5Dvlen_reclaim(memory.get(), space.get(), H5P_DEFAULT, pointers.data()));
  return values;
}

std::vector<std::string> read_string_dataset(hid_t file, const std::string& name) {
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) throw InputError("dataset '" + name + "' is missing");
  Handle dataset(TS_CHECK_HDF5(H5Dopen2(file, name.c_str(), H5P_DEFAULT)));
  Handle type(TS_CHECK_HDF5(H5Dget_type(dataset.get())));
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) <= 0)
    throw InputError("dataset '" + name + "' is not a variable-length string dataset");
  Handle space(TS_CHECK_HDF5(H5Dget_space(dataset.get())));
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw InputError("dataset '" + name + "' is not 1-D");
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  std::vector<char*> pointers(static_cast<size_t>(count), nullptr);
  Handle memory = utf8_vlen_string_type();
  if (count > 0) TS_CHECK_HDF5(H5Dread(dataset.get(), memory.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()));
  std::vector<std::string> values;
  values.reserve(pointers.size());
  for (char* p : pointers) values.emplace_back(p ? p : "");
  if (count > 0) TS_CHECK_HDF5(H5Dvlen_reclaim(memory.get(), space.get(), H5P_DEFAULT, pointers.data()));
  return values;
}

void write_string_dataset(hid_t file, const std::string& name, const std::vector<std::string>& values) {
  Handle type = utf8_vlen_string_type();
  const hsize_t count = values.size();
  Handle space(TS_CHECK_HDF5(H5Screate_simple(1, &count, nullptr)));
  Handle dataset(
      TS_CHECK_HDF5(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const auto& v : values) pointers.push_back(v.c_str());
  if (!pointers.empty())
    TS_CHECK_HDF5(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()));
}

}  // namespace h5
}  // namespace textscale
