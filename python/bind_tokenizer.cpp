// Binding of la::Tokenizer: Python arguments are converted here, the work runs without the GIL.
#include <pybind11/stl.h>

#include <climits>
#include <optional>

#include "bind.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace la::py {
namespace {

namespace pb = pybind11;

// str is taken as UTF-8; lone surrogates (which strict UTF-8 cannot carry) go through as
// "surrogatepass" bytes, which the tokenizer treats like any other invalid UTF-8.
std::string text_bytes(const pb::handle& text) {
  if (PyBytes_Check(text.ptr())) return std::string(PyBytes_AS_STRING(text.ptr()), PyBytes_GET_SIZE(text.ptr()));
  if (PyByteArray_Check(text.ptr()))
    return std::string(PyByteArray_AS_STRING(text.ptr()), PyByteArray_GET_SIZE(text.ptr()));
  if (PyUnicode_Check(text.ptr())) {
    Py_ssize_t size = 0;
    if (const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size)) return std::string(data, size);
    PyErr_Clear();
    pb::bytes raw = pb::reinterpret_steal<pb::bytes>(PyUnicode_AsEncodedString(text.ptr(), "utf-8", "surrogatepass"));
    if (!raw) throw pb::error_already_set();
    return std::string(raw);
  }
  throw pb::type_error(str_cat("Tokenizer.encode expects str or bytes, got ",
                               std::string(pb::str(pb::type::handle_of(text).attr("__name__")))));
}

std::vector<int32_t> token_ids(const Tokenizer& tok, const pb::handle& ids) {
  if (PyUnicode_Check(ids.ptr()) || PyBytes_Check(ids.ptr()))
    throw pb::type_error("Tokenizer.decode expects a sequence of token ids, not a string");
  std::vector<int32_t> out;
  if (PySequence_Check(ids.ptr())) {
    Py_ssize_t n = PySequence_Size(ids.ptr());
    if (n > 0) out.reserve(static_cast<size_t>(n));
    PyErr_Clear();  // a "sequence" without __len__ still iterates
  }
  for (pb::handle item : pb::iter(ids)) {
    pb::object index = pb::reinterpret_steal<pb::object>(PyNumber_Index(item.ptr()));
    if (!index) {
      PyErr_Clear();
      throw pb::type_error(str_cat("Tokenizer.decode: token ids must be integers, got ",
                                   std::string(pb::repr(item))));
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow || v < INT32_MIN || v > INT32_MAX)
      throw InvalidArgument(str_cat("token id ", std::string(pb::str(index)), " is not in the vocabulary (vocab_size ",
                                    tok.vocab_size(), "); ids must come from this checkpoint's tokenizer."));
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

}  // namespace

void register_tokenizer(pybind11::module_& m) {
  pb::class_<Tokenizer>(m, "Tokenizer",
                        "Qwen2 byte-level BPE tokenizer of a LocateAnything checkpoint; matches the Hugging Face "
                        "fast tokenizer id for id.")
      .def(pb::init([](const pb::object& model_dir) {
             std::string dir = pb::str(pb::module_::import("os").attr("fspath")(model_dir));
             pb::gil_scoped_release release;
             return Tokenizer::from_dir(dir);
           }),
           pb::arg("model_dir"),
           "Loads tokenizer.json, or vocab.json + merges.txt + added_tokens.json + tokenizer_config.json, from "
           "the checkpoint folder.")
      .def(
          "encode",
          [](const Tokenizer& tok, const pb::object& text) {
            std::string bytes = text_bytes(text);
            std::vector<int32_t> ids;
            {
              pb::gil_scoped_release release;
              ids = tok.encode(bytes);
            }
            return ids;
          },
          pb::arg("text"),
          "Token ids of `text` (str, or bytes taken as UTF-8; invalid bytes are kept as byte tokens). Added and "
          "special tokens written in the text become single ids; no BOS/EOS is added.")
      .def(
          "decode",
          [](const Tokenizer& tok, const pb::object& ids) {
            std::vector<int32_t> v = token_ids(tok, ids);
            std::string text;
            {
              pb::gil_scoped_release release;
              text = tok.decode(v);
            }
            return text;
          },
          pb::arg("ids"),
          "Text of `ids`; special tokens are kept, invalid UTF-8 becomes U+FFFD. Unknown ids raise ValueError.")
      .def(
          "token_to_id",
          [](const Tokenizer& tok, const std::string& token) -> std::optional<int32_t> {
            int32_t id = tok.token_to_id(token);
            if (id < 0) return std::nullopt;
            return id;
          },
          pb::arg("token"), "Id of a vocabulary entry (byte-level form) or added token, or None.")
      .def("id_to_token", &Tokenizer::id_to_token, pb::arg("id"),
           "Added-token text, or the byte-level form of a vocabulary entry (e.g. 'Ġthe').")
      .def("is_added_token", &Tokenizer::is_added_token, pb::arg("id"))
      .def("is_special_token", &Tokenizer::is_special_token, pb::arg("id"))
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size, "One past the largest token id.")
      .def_property_readonly("model_max_length", &Tokenizer::model_max_length,
                             "model_max_length of tokenizer_config.json (0 when absent or unbounded).")
      .def("__repr__", [](const Tokenizer& tok) {
        return str_cat("<locateanything_native.Tokenizer vocab_size=", tok.vocab_size(), ">");
      });
}

}  // namespace la::py
