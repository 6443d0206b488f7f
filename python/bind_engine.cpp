// register_engine: the Engine class, its result type and the pipeline stages, with numpy in/out and
// the GIL released around every long call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bind.h"
#include "core/error.h"
#include "core/cpu.h"
#include "core/cpu_budget.h"
#include "engine/engine.h"

namespace py = pybind11;

namespace la::py {

namespace {

::py::dict timings_dict(const Timings& t) {
  ::py::dict d;
  d["preprocess"] = t.preprocess;
  d["vision"] = t.vision;
  d["projector"] = t.projector;
  d["prefill"] = t.prefill;
  d["decode"] = t.decode;
  d["total"] = t.total;
  d["prompt_tokens"] = t.prompt_tokens;
  d["image_tokens"] = t.image_tokens;
  d["generated_tokens"] = t.generated_tokens;
  d["forward_calls"] = t.forward_calls;
  d["shared_prefix_tokens"] = t.shared_prefix_tokens;
  d["images_encoded"] = t.images_encoded;
  d["tokens_per_second"] = t.tokens_per_second();
  return d;
}

::py::object score_or_none(double score) {
  return std::isnan(score) ? ::py::none() : ::py::object(::py::float_(score));
}

::py::list detections_list(const std::vector<Detection>& dets, Detection::Kind kind) {
  ::py::list out;
  for (const Detection& d : dets) {
    if (d.kind != kind) continue;
    ::py::dict item;
    item["label"] = d.label;
    if (kind == Detection::Kind::Box) {
      item["x1"] = d.x1;
      item["y1"] = d.y1;
      item["x2"] = d.x2;
      item["y2"] = d.y2;
    } else if (kind == Detection::Kind::Point) {
      item["x"] = d.x1;
      item["y"] = d.y1;
    }
    item["score"] = score_or_none(d.score);
    out.append(item);
  }
  return out;
}

// ---- Result state for pickling (every field, so a round trip gives an equal result) ----

::py::dict result_state(const QueryResult& r) {
  ::py::dict d;
  d["answer"] = r.answer;
  d["prompt_ids"] = r.prompt_ids;
  const GenerationResult& g = r.generation;
  d["tokens"] = g.tokens;
  d["token_probs"] = g.token_probs;
  d["stop_reason"] = g.stop_reason;
  d["forward_calls"] = g.forward_calls;
  d["switch_to_ar"] = g.switch_to_ar;
  d["loop_guard_fired"] = g.loop_guard_fired;
  ::py::list steps;
  for (const StepRecord& s : g.steps)
    steps.append(::py::make_tuple(s.past_len, s.q_len, s.mtp, s.type, s.route, s.x0, s.emitted));
  d["step_records"] = steps;
  d["generation_history"] = g.history;
  d["history"] = r.history;
  ::py::list dets;
  for (const Detection& x : r.detections)
    dets.append(::py::make_tuple(static_cast<int>(x.kind), x.label, x.x1, x.y1, x.x2, x.y2,
                                 std::vector<int>(x.raw, x.raw + 4), x.score));
  d["detections"] = dets;
  const Timings& t = r.timings;
  d["timings"] = std::vector<double>{t.preprocess, t.vision, t.projector, t.prefill, t.decode, t.total};
  d["counts"] = std::vector<int64_t>{t.prompt_tokens, t.image_tokens, t.generated_tokens, t.forward_calls,
                                     t.shared_prefix_tokens, t.images_encoded};
  ::py::list st;
  for (const StepTiming& s : r.steps) st.append(::py::make_tuple(s.q_len, s.mtp, s.seconds, s.committed));
  d["step_times"] = st;
  d["size"] = ::py::make_tuple(r.width, r.height);
  return d;
}

QueryResult result_from_state(const ::py::dict& d) {
  LA_CHECK(d.contains("answer") && d.contains("detections") && d.contains("timings"), InvalidArgument,
           "not a pickled locateanything_native Result");
  QueryResult r;
  r.answer = d["answer"].cast<std::string>();
  r.prompt_ids = d["prompt_ids"].cast<std::vector<int32_t>>();
  GenerationResult& g = r.generation;
  g.tokens = d["tokens"].cast<std::vector<int32_t>>();
  g.token_probs = d["token_probs"].cast<std::vector<float>>();
  g.stop_reason = d["stop_reason"].cast<std::string>();
  g.forward_calls = d["forward_calls"].cast<int64_t>();
  g.switch_to_ar = d["switch_to_ar"].cast<int64_t>();
  g.loop_guard_fired = d["loop_guard_fired"].cast<bool>();
  for (const auto& item : d["step_records"].cast<::py::list>()) {
    const auto t = item.cast<::py::tuple>();
    StepRecord s;
    s.past_len = t[0].cast<int64_t>();
    s.q_len = t[1].cast<int64_t>();
    s.mtp = t[2].cast<bool>();
    s.type = t[3].cast<std::string>();
    s.route = t[4].cast<std::string>();
    s.x0 = t[5].cast<std::vector<int32_t>>();
    s.emitted = t[6].cast<std::vector<int32_t>>();
    g.steps.push_back(std::move(s));
  }
  g.history = d["generation_history"].cast<std::vector<std::pair<std::string, std::vector<int32_t>>>>();
  r.history = d["history"].cast<std::vector<std::pair<std::string, std::string>>>();
  for (const auto& item : d["detections"].cast<::py::list>()) {
    const auto t = item.cast<::py::tuple>();
    Detection x;
    x.kind = static_cast<Detection::Kind>(t[0].cast<int>());
    x.label = t[1].cast<std::string>();
    x.x1 = t[2].cast<double>();
    x.y1 = t[3].cast<double>();
    x.x2 = t[4].cast<double>();
    x.y2 = t[5].cast<double>();
    const auto raw = t[6].cast<std::vector<int>>();
    for (size_t k = 0; k < 4 && k < raw.size(); ++k) x.raw[k] = raw[k];
    x.score = t[7].cast<double>();
    r.detections.push_back(std::move(x));
  }
  const auto tv = d["timings"].cast<std::vector<double>>();
  const auto cv = d["counts"].cast<std::vector<int64_t>>();
  LA_CHECK(tv.size() == 6 && cv.size() == 6, InvalidArgument, "not a pickled locateanything_native Result");
  Timings& t = r.timings;
  t.preprocess = tv[0], t.vision = tv[1], t.projector = tv[2], t.prefill = tv[3], t.decode = tv[4], t.total = tv[5];
  t.prompt_tokens = cv[0], t.image_tokens = cv[1], t.generated_tokens = cv[2], t.forward_calls = cv[3];
  t.shared_prefix_tokens = cv[4], t.images_encoded = cv[5];
  for (const auto& item : d["step_times"].cast<::py::list>()) {
    const auto s = item.cast<::py::tuple>();
    r.steps.push_back({s[0].cast<int64_t>(), s[1].cast<bool>(), s[2].cast<double>(), s[3].cast<int64_t>()});
  }
  const auto size = d["size"].cast<std::pair<int, int>>();
  r.width = size.first;
  r.height = size.second;
  return r;
}

// The documented record of a result (plain Python types; the CLI writes it as JSON).
::py::dict result_dict(const QueryResult& r) {
  ::py::dict d;
  d["answer"] = r.answer;
  d["width"] = r.width;
  d["height"] = r.height;
  d["boxes"] = detections_list(r.detections, Detection::Kind::Box);
  d["points"] = detections_list(r.detections, Detection::Kind::Point);
  d["none_count"] = std::count_if(r.detections.begin(), r.detections.end(),
                                  [](const Detection& x) { return x.kind == Detection::Kind::None; });
  d["stop_reason"] = r.generation.stop_reason;
  d["generated_ids"] = r.generation.tokens;
  d["forward_calls"] = r.generation.forward_calls;
  d["switch_to_ar"] = r.generation.switch_to_ar;
  d["loop_guard_fired"] = r.generation.loop_guard_fired;
  d["timings"] = timings_dict(r.timings);
  return d;
}

::py::list steps_list(const std::vector<StepRecord>& steps) {
  ::py::list out;
  for (const StepRecord& s : steps) {
    ::py::dict d;
    d["past_len"] = s.past_len;
    d["q_len"] = s.q_len;
    d["is_mtp"] = s.mtp;
    d["type"] = s.type;
    d["route"] = s.route;
    d["x0"] = s.x0;
    d["emitted"] = s.emitted;
    out.append(d);
  }
  return out;
}

std::vector<ImageU8> images_from(const ::py::list& images) {
  std::vector<ImageU8> out;
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string what = "image " + std::to_string(i + 1);
    out.push_back(image_from_numpy(images[i], what.c_str()));
  }
  return out;
}

GenerationOptions generation_options(const std::string& generation_mode, int64_t max_new_tokens, float temperature,
                                     float top_p, int top_k, float repetition_penalty, uint64_t seed, bool loop_guard,
                                     bool record_steps) {
  GenerationOptions g;
  g.mode = parse_generation_mode(generation_mode);
  g.max_new_tokens = max_new_tokens;
  g.sampling.temperature = temperature;
  g.sampling.top_p = top_p;
  g.sampling.top_k = top_k;
  g.sampling.repetition_penalty = repetition_penalty;
  g.seed = seed;
  g.loop_guard = loop_guard;
  g.record_steps = record_steps;
  g.validate();
  return g;
}

// The defaults every front end shows, from the one struct that holds them.
const GenerationOptions kDefaults{};

::py::dict generation_defaults() {
  ::py::dict d;
  d["generation_mode"] = generation_mode_name(kDefaults.mode);
  d["max_new_tokens"] = kDefaults.max_new_tokens;
  d["temperature"] = kDefaults.sampling.temperature;
  d["top_p"] = kDefaults.sampling.top_p;
  d["top_k"] = kDefaults.sampling.top_k;
  d["repetition_penalty"] = kDefaults.sampling.repetition_penalty;
  d["loop_guard"] = kDefaults.loop_guard;
  d["max_new_tokens_limit"] = GenerationOptions::kMaxNewTokensLimit;
  return d;
}

template <typename T>
T get_or(const ::py::dict& d, const char* key, T fallback) {
  return d.contains(key) && !d[key].is_none() ? d[key].cast<T>() : fallback;
}

// The Result class: attributes, to_dict(), pickling and copies.
void register_result(::py::module_& m) {
  ::py::class_<QueryResult>(m, "Result", "Outcome of one query: answer, parsed items, timings, decoding trace.")
      .def_readonly("answer", &QueryResult::answer)
      .def_readonly("prompt_ids", &QueryResult::prompt_ids)
      .def_property_readonly("generated_ids", [](const QueryResult& r) { return r.generation.tokens; })
      .def_property_readonly("stop_reason", [](const QueryResult& r) { return r.generation.stop_reason; })
      .def_property_readonly("forward_calls", [](const QueryResult& r) { return r.generation.forward_calls; })
      .def_property_readonly("switch_to_ar", [](const QueryResult& r) { return r.generation.switch_to_ar; })
      .def_property_readonly("loop_guard_fired", [](const QueryResult& r) { return r.generation.loop_guard_fired; })
      .def_readonly("history", &QueryResult::history)
      .def_property_readonly("step_times",
                             [](const QueryResult& r) {
                               ::py::list out;
                               for (const StepTiming& s : r.steps)
                                 out.append(::py::make_tuple(s.q_len, s.mtp, s.seconds, s.committed));
                               return out;
                             },
                             "(chunk rows, is_mtp, seconds, tokens committed) of every forward pass, in order")
      .def_property_readonly("steps", [](const QueryResult& r) { return steps_list(r.generation.steps); })
      .def_property_readonly("boxes", [](const QueryResult& r) { return detections_list(r.detections, Detection::Kind::Box); })
      .def_property_readonly("points",
                             [](const QueryResult& r) { return detections_list(r.detections, Detection::Kind::Point); })
      .def_property_readonly("none_count",
                             [](const QueryResult& r) {
                               return std::count_if(r.detections.begin(), r.detections.end(), [](const Detection& d) {
                                 return d.kind == Detection::Kind::None;
                               });
                             })
      .def_property_readonly("timings", [](const QueryResult& r) { return timings_dict(r.timings); })
      .def_readonly("width", &QueryResult::width)
      .def_readonly("height", &QueryResult::height)
      .def_property_readonly("token_probs", [](const QueryResult& r) { return r.generation.token_probs; },
                             "probability of each generated id under the distribution it was drawn from")
      .def("to_dict", &result_dict,
           "The result as plain Python types: answer, width, height, boxes ([{label, x1, y1, x2, y2, score}]), "
           "points ([{label, x, y, score}]), none_count, stop_reason, generated_ids, forward_calls, switch_to_ar, "
           "loop_guard_fired, timings. JSON-serialisable; the CLI's records hold these keys.")
      .def("__eq__", [](const QueryResult& a, const ::py::object& other) -> ::py::object {
        if (!::py::isinstance<QueryResult>(other)) return ::py::reinterpret_borrow<::py::object>(Py_NotImplemented);
        const QueryResult& b = other.cast<const QueryResult&>();
        return ::py::bool_(a.answer == b.answer && a.generation.tokens == b.generation.tokens && a.width == b.width &&
                           a.height == b.height);
      })
      .def(::py::pickle([](const QueryResult& r) { return result_state(r); },
                        [](const ::py::dict& d) { return result_from_state(d); }))
      .def("__copy__", [](const QueryResult& r) { return QueryResult(r); })
      .def("__deepcopy__", [](const QueryResult& r, const ::py::dict&) { return QueryResult(r); }, ::py::arg("memo"))
      .def("__repr__", [](const QueryResult& r) {
        return "<Result answer=" + std::string(::py::repr(::py::str(r.answer))) + " stop=" + r.generation.stop_reason + ">";
      });
}

// The Engine class: construction (with load progress), run / run_batch and every pipeline stage.
void register_engine_class(::py::module_& m) {
  ::py::class_<Engine>(m, "Engine", "A loaded LocateAnything checkpoint; load once, run many queries.")
      .def(::py::init([](const std::string& model_dir, int threads, const std::string& quantization,
                         size_t vision_cache_bytes, const std::string& packed_cache, ::py::object progress) {
             EngineOptions o;
             o.model_dir = model_dir;
             o.threads = threads;
             o.quantization = quantization;
             o.vision_cache_bytes = vision_cache_bytes;
             o.packed_cache = packed_cache;
             if (!progress.is_none()) {
               // The load runs with the GIL released: the callable is held through a shared_ptr (copies
               // of the options touch no reference count) and called, and finally dropped, under the GIL.
               std::shared_ptr<::py::object> fn(new ::py::object(progress), [](::py::object* p) {
                 ::py::gil_scoped_acquire gil;
                 delete p;
               });
               o.progress = [fn](const LoadProgress& p) {
                 ::py::gil_scoped_acquire gil;
                 (*fn)(p.stage, p.fraction, p.message);
               };
             }
             ::py::gil_scoped_release release;
             return std::make_unique<Engine>(o);
           }),
           ::py::arg("model_dir"), ::py::arg("threads") = 0, ::py::arg("quantization") = "int4",
           ::py::arg("vision_cache_bytes") = 0, ::py::arg("packed_cache") = "", ::py::arg("progress") = ::py::none(),
           "progress(stage, fraction, message), when given, hears what the load is doing: stages open, "
           "map_cache, build_cache, quantise (fraction of the checkpoint converted), write_cache, done.")
      .def(
          "run",
          [](Engine& e, const ::py::list& images, const std::string& question, const std::string& generation_mode,
             int64_t max_new_tokens, float temperature, float top_p, int top_k, float repetition_penalty,
             uint64_t seed, bool loop_guard, bool record_steps, const std::string& chat_template) {
            GenerationOptions g = generation_options(generation_mode, max_new_tokens, temperature, top_p, top_k,
                                                     repetition_penalty, seed, loop_guard, record_steps);
            Query q;
            q.images = images_from(images);
            q.question = question;
            q.chat_template = parse_chat_template(chat_template);
            ::py::gil_scoped_release release;
            return e.run(q, g);
          },
          ::py::arg("images"), ::py::arg("question"),
          ::py::arg("generation_mode") = std::string(generation_mode_name(kDefaults.mode)),
          ::py::arg("max_new_tokens") = kDefaults.max_new_tokens, ::py::arg("temperature") = kDefaults.sampling.temperature,
          ::py::arg("top_p") = kDefaults.sampling.top_p, ::py::arg("top_k") = kDefaults.sampling.top_k,
          ::py::arg("repetition_penalty") = kDefaults.sampling.repetition_penalty, ::py::arg("seed") = 0,
          ::py::arg("loop_guard") = kDefaults.loop_guard, ::py::arg("record_steps") = false, ::py::arg("chat_template") = "worker",
          "Runs the whole pipeline on images (list of H×W×C uint8 arrays; the first is the image, the rest "
          "visual prompts) and a question.")
      .def(
          "run_batch",
          [](Engine& e, const ::py::list& requests, const std::string& generation_mode, int64_t max_new_tokens,
             float temperature, float top_p, int top_k, float repetition_penalty, uint64_t seed, bool loop_guard,
             bool record_steps, const std::string& chat_template) {
            std::vector<Query> queries;
            std::vector<GenerationOptions> opts;
            for (size_t i = 0; i < requests.size(); ++i) {
              LA_CHECK(::py::isinstance<::py::dict>(requests[i]), InvalidArgument, "request ", i,
                       " must be a dict with 'images' and 'question'");
              const ::py::dict r = requests[i].cast<::py::dict>();
              LA_CHECK(r.contains("images") && r.contains("question"), InvalidArgument, "request ", i,
                       " needs the keys 'images' (list of arrays) and 'question'");
              Query q;
              q.images = images_from(r["images"].cast<::py::list>());
              q.question = r["question"].cast<std::string>();
              q.chat_template = parse_chat_template(get_or<std::string>(r, "chat_template", chat_template));
              queries.push_back(std::move(q));
              opts.push_back(generation_options(
                  get_or<std::string>(r, "generation_mode", generation_mode),
                  get_or<int64_t>(r, "max_new_tokens", max_new_tokens), get_or<float>(r, "temperature", temperature),
                  get_or<float>(r, "top_p", top_p), get_or<int>(r, "top_k", top_k),
                  get_or<float>(r, "repetition_penalty", repetition_penalty), get_or<uint64_t>(r, "seed", seed),
                  get_or<bool>(r, "loop_guard", loop_guard), record_steps));
            }
            ::py::gil_scoped_release release;
            return e.run_batch(queries, opts);
          },
          ::py::arg("requests"), ::py::arg("generation_mode") = std::string(generation_mode_name(kDefaults.mode)),
          ::py::arg("max_new_tokens") = kDefaults.max_new_tokens, ::py::arg("temperature") = kDefaults.sampling.temperature,
          ::py::arg("top_p") = kDefaults.sampling.top_p, ::py::arg("top_k") = kDefaults.sampling.top_k,
          ::py::arg("repetition_penalty") = kDefaults.sampling.repetition_penalty, ::py::arg("seed") = 0,
          ::py::arg("loop_guard") = kDefaults.loop_guard,
          ::py::arg("record_steps") = false, ::py::arg("chat_template") = "worker",
          "Runs many requests ({'images': [...], 'question': str, optional per-row overrides of the keyword "
          "options}) together; each row is token-identical to running it alone.")
      .def("set_vision_cache", [](Engine& e, size_t bytes) { e.set_vision_cache_bytes(bytes); }, ::py::arg("max_bytes"),
           "Keeps image encodings across calls, up to max_bytes of features (0 = off).")
      .def_property_readonly("vision_cache_entries", [](const Engine& e) { return e.vision_cache().size(); })
      .def_property_readonly("vision_cache_bytes", [](const Engine& e) { return e.vision_cache().bytes(); })
      .def(
          "preprocess",
          [](const Engine& e, const ::py::array& image) {
            ImageU8 img = image_from_numpy(image, "image");
            PixelValues px;
            {
              ::py::gil_scoped_release release;
              px = e.preprocess(img);
            }
            const int p = e.config().preprocess.patch_size;
            return ::py::make_tuple(to_numpy(std::move(px.data), {static_cast<::py::ssize_t>(px.grid_h) * px.grid_w, 3, p, p}),
                                    ::py::make_tuple(px.grid_h, px.grid_w));
          },
          ::py::arg("image"), "pixel_values [N, 3, p, p] float32 and the grid (h, w), as the official processor.")
      .def(
          "vision_features",
          [](const Engine& e, const ::py::array_t<float, ::py::array::c_style | ::py::array::forcecast>& pixels,
             std::pair<int, int> grid, bool project) {
            const VisionConfig& vc = e.config().vision;
            const int64_t per_patch = 3LL * vc.patch * vc.patch;
            LA_CHECK(pixels.size() == static_cast<int64_t>(grid.first) * grid.second * per_patch, InvalidArgument,
                     "pixel_values hold ", pixels.size(), " values but grid ", grid.first, "x", grid.second, " needs ",
                     static_cast<int64_t>(grid.first) * grid.second * per_patch);
            std::vector<float> out;
            int64_t n = static_cast<int64_t>(grid.first / vc.merge_h) * (grid.second / vc.merge_w);
            {
              ::py::gil_scoped_release release;
              out = e.vision_merged(pixels.data(), grid.first, grid.second);
              if (project) out = e.project(out.data(), n);
            }
            const ::py::ssize_t cols = static_cast<::py::ssize_t>(out.size()) / std::max<int64_t>(n, 1);
            return to_numpy(std::move(out), {n, cols});
          },
          ::py::arg("pixel_values"), ::py::arg("grid"), ::py::arg("project") = false,
          "Vision tower output after the 2x2 merge ([tokens, 4*hidden]); with project=True after mlp1.")
      .def(
          "project",
          [](const Engine& e, const ::py::array_t<float, ::py::array::c_style | ::py::array::forcecast>& merged) {
            LA_CHECK(merged.ndim() == 2 && merged.shape(1) == e.config().vision.merged_dim(), InvalidArgument,
                     "merged features must be [n, ", e.config().vision.merged_dim(), "]");
            std::vector<float> out;
            {
              ::py::gil_scoped_release release;
              out = e.project(merged.data(), merged.shape(0));
            }
            return to_numpy(std::move(out), {merged.shape(0), e.config().text.hidden});
          },
          ::py::arg("merged"))
      .def(
          "prompt_ids",
          [](const Engine& e, const std::string& question, std::vector<int64_t> image_tokens,
             const std::string& chat_template) {
            ::py::gil_scoped_release release;
            return e.prompt_ids(question, image_tokens, parse_chat_template(chat_template));
          },
          ::py::arg("question"), ::py::arg("image_tokens"), ::py::arg("chat_template") = "worker")
      .def(
          "prefill_logits",
          [](const Engine& e, const std::vector<int32_t>& ids, ::py::object image_rows, int64_t last_n) {
            ::py::array_t<float, ::py::array::c_style | ::py::array::forcecast> rows;
            const float* rp = nullptr;
            int64_t n_rows = 0;
            if (!image_rows.is_none()) {
              rows = image_rows.cast<::py::array_t<float, ::py::array::c_style | ::py::array::forcecast>>();
              LA_CHECK(rows.ndim() == 2 && rows.shape(1) == e.config().text.hidden, InvalidArgument,
                       "image_rows must be [n, ", e.config().text.hidden, "]");
              rp = rows.data();
              n_rows = rows.shape(0);
            }
            std::vector<float> out;
            const int64_t n = std::max<int64_t>(1, std::min<int64_t>(last_n, static_cast<int64_t>(ids.size())));
            {
              ::py::gil_scoped_release release;
              out = e.prefill_logits(ids, rp, n_rows, n);
            }
            return to_numpy(std::move(out), {n, e.config().text.vocab});
          },
          ::py::arg("input_ids"), ::py::arg("image_rows") = ::py::none(), ::py::arg("last_n") = 1,
          "Causal forward of input_ids (image rows spliced at <IMG_CONTEXT>); logits of the last rows.")
      .def(
          "decoder_weight",
          [](const Engine& e, const std::string& name) {
            int64_t out = 0, in = 0;
            std::vector<float> w;
            {
              ::py::gil_scoped_release release;
              w = e.decoder_weight(name, &out, &in);
            }
            return to_numpy(std::move(w), {out, in});
          },
          ::py::arg("name"), "A decoder matrix as float32 [out, in], dequantised exactly when quantised.")
      .def("encode", [](const Engine& e, const std::string& text) { return e.tokenizer().encode(text); })
      .def("decode", [](const Engine& e, const std::vector<int32_t>& ids) { return e.tokenizer().decode(ids); })
      .def_property_readonly("load_seconds", &Engine::load_seconds)
      .def_property_readonly("threads", [](const Engine& e) { return e.pool().size(); })
      .def_property_readonly("threads_source", &Engine::threads_source,
                             "what set the thread count: the threads argument, the affinity mask, the cgroup CPU "
                             "quota, LOCATEANYTHING_THREADS or OMP_NUM_THREADS")
      .def_property_readonly("notes", &Engine::load_notes)
      .def_property_readonly("quantization", &Engine::quantization_tag)
      .def_property_readonly("packed_cache_file", &Engine::packed_cache_file)
      .def_property_readonly("weight_bytes", &Engine::weight_bytes)
      .def(
          "memory_report",
          [](const Engine& e) {
            ::py::dict d;
            d["vision"] = e.vision().weight_bytes();
            d["projector"] = e.projector().weight_bytes();
            d["decoder_linears"] = e.decoder().linear_bytes();
            d["embedding"] = e.decoder().embedding_bytes();
            d["head"] = e.decoder().head_bytes();
            d["decode_streamed_per_step"] = e.decoder().streamed_bytes_per_step();
            const TextConfig& t = e.config().text;
            d["kv_cache_per_token"] = static_cast<int64_t>(t.layers) * 2 * t.kv_heads * t.head_dim() * 4;
            return d;
          },
          "Weight bytes by part, the bytes a decode step streams, and KV-cache bytes per token.")
      .def_property_readonly("image_token_id", [](const Engine& e) { return e.config().ids.image_context; })
      .def_property_readonly("vocab_size", [](const Engine& e) { return e.config().text.vocab; })
      .def_property_readonly("model_max_length", [](const Engine& e) { return e.config().model_max_length; });

  m.def("task_prompt", &task_prompt, ::py::arg("task"), ::py::arg("arg") = "",
        "The official worker's prompt for a task (detect, ground_single, ground_multi, ground_text, detect_text, "
        "ground_gui, ground_gui_point, point, detect_visual_prompt).");
  m.def("join_categories", &join_categories, ::py::arg("categories"), "Categories joined with </c>, as detect().");
}

// The package's one answer parser, by rule: "worker" (the official worker's parse_boxes / parse_points,
// with labels; what Result.boxes uses), "eval" (the evaluation scripts' parse_prediction) and
// "eval_boxes" (the detection script's, boxes only).
::py::list parse_answer_py(const std::string& answer, double width, double height, const std::string& rule) {
  ::py::list out;
  if (rule == "worker") {
    for (const Detection& d : parse_answer(answer, static_cast<int>(width), static_cast<int>(height))) {
      ::py::dict item;
      item["kind"] = d.kind == Detection::Kind::Box ? "box" : d.kind == Detection::Kind::Point ? "point" : "none";
      item["label"] = d.label;
      item["values"] = d.kind == Detection::Kind::Box     ? std::vector<int>(d.raw, d.raw + 4)
                       : d.kind == Detection::Kind::Point ? std::vector<int>(d.raw, d.raw + 2)
                                                          : std::vector<int>{};
      item["pixels"] = d.kind == Detection::Kind::Box     ? std::vector<double>{d.x1, d.y1, d.x2, d.y2}
                       : d.kind == Detection::Kind::Point ? std::vector<double>{d.x1, d.y1}
                                                          : std::vector<double>{};
      item["start"] = d.start;
      out.append(item);
    }
    return out;
  }
  LA_CHECK(rule == "eval" || rule == "eval_boxes", InvalidArgument, "unknown parse rule '", rule,
           "': use 'worker', 'eval' or 'eval_boxes'");
  for (const EvalItem& e : parse_answer_eval(answer, width, height, rule == "eval")) {
    const int n = e.is_point ? 2 : 4;
    ::py::list pixels, values;
    for (int k = 0; k < n; ++k) {
      // A clamped value is the int bound, as the scripts' JSON writes it.
      pixels.append(e.integral[k] ? ::py::object(::py::int_(static_cast<int64_t>(e.pixels[k])))
                                  : ::py::object(::py::float_(e.pixels[k])));
      values.append(e.values[k]);
    }
    ::py::dict item;
    item["kind"] = e.is_point ? "point" : "box";
    item["label"] = e.label;
    item["values"] = values;
    item["pixels"] = pixels;
    item["start"] = e.start;
    out.append(item);
  }
  return out;
}

// Module-level names: quantisations, generation defaults and checks, task prompts, ISA, thread budget.
void register_functions(::py::module_& m) {
  m.def("parse_answer", &parse_answer_py, ::py::arg("answer"), ::py::arg("width"), ::py::arg("height"),
        ::py::arg("rule") = "worker",
        "Items of an answer as [{kind, label, values, pixels, start}] (start: byte offset of the item's <box> in "
        "the UTF-8 answer), by rule: 'worker' (the official "
        "worker's parse_boxes / parse_points, labels carried from the last <ref>), 'eval' (the evaluation "
        "scripts' parse_prediction: labelled runs, clamped, corners ordered) or 'eval_boxes' (boxes only).");
  m.attr("QUANTIZATIONS") = ::py::cast(quantization_names());
  m.attr("GENERATION_DEFAULTS") = generation_defaults();
  m.def(
      "check_generation",
      [](const std::string& generation_mode, int64_t max_new_tokens, float temperature, float top_p, int top_k,
         float repetition_penalty) {
        generation_options(generation_mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, 0, false,
                           false);
      },
      ::py::arg("generation_mode") = std::string(generation_mode_name(kDefaults.mode)),
      ::py::arg("max_new_tokens") = kDefaults.max_new_tokens, ::py::arg("temperature") = kDefaults.sampling.temperature,
      ::py::arg("top_p") = kDefaults.sampling.top_p, ::py::arg("top_k") = kDefaults.sampling.top_k,
      ::py::arg("repetition_penalty") = kDefaults.sampling.repetition_penalty,
      "ValueError naming the first generation option out of range (the checks every run makes).");
  m.def("default_thread_budget", [] {
    const ThreadBudget b = default_thread_budget();
    return ::py::make_tuple(b.threads, b.source);
  }, "(threads, source): the thread count an engine takes by default in this process, and why.");
  m.def("isa", [] { return std::string(isa_name(active_isa())); }, "The kernel instruction set in use.");
  m.def("kernels", [] {
    const Isa isa = active_isa();
    ::py::dict d;
    d["isa"] = std::string(isa_name(isa));
    d["detected_isa"] = std::string(isa_name(detected_isa()));
    d["int8_products"] = std::string(isa >= Isa::Avx512Vnni ? "vpdpbusd (AVX-512 VNNI)"
                                     : isa >= Isa::Avx2     ? "vpmaddubsw"
                                                            : "scalar");
    d["bf16_units"] = bf16_units();
    d["vision_attention_quantised"] = std::string(bf16_units() ? "bf16 (vdpbf16ps)" : "float32");
    d["quant_numerics"] = quant_numerics_version();
    return d;
  }, "The dispatcher's kernel choices in this process: ISA, the int8 dot instruction, whether the "
     "AVX-512 BF16 units are used, the quantised plans' vision attention, and the version of the "
     "quantised products' numerics.");
}

}  // namespace

void register_engine(::py::module_& m) {
  register_result(m);
  register_engine_class(m);
  register_functions(m);

}

}  // namespace la::py
