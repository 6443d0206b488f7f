// Prompt strings exactly as the official worker and processor build them.
#include "text/prompt.h"

#include <cctype>

#include "core/error.h"

namespace la {

ChatTemplate parse_chat_template(const std::string& name) {
  if (name == "worker") return ChatTemplate::Worker;
  if (name == "eval") return ChatTemplate::Eval;
  throw InvalidArgument(str_cat("unknown chat template '", name,
                                "': use 'worker' (the official worker's prompt) or 'eval' (the evaluation "
                                "scripts' chat_template.json rendering)"));
}

std::string join_categories(const std::vector<std::string>& categories) {
  std::string out;
  for (size_t i = 0; i < categories.size(); ++i) out += (i ? "</c>" : "") + categories[i];
  return out;
}

std::string task_prompt(const std::string& task, const std::string& arg) {
  if (task == "detect") return "Locate all the instances that matches the following description: " + arg + ".";
  if (task == "ground_single") return "Locate a single instance that matches the following description: " + arg + ".";
  if (task == "ground_multi") return "Locate all the instances that match the following description: " + arg + ".";
  if (task == "ground_text") return "Please locate the text referred as " + arg + ".";
  if (task == "detect_text") return "Detect all the text in box format.";
  if (task == "ground_gui") return "Locate the region that matches the following description: " + arg + ".";
  if (task == "ground_gui_point" || task == "point") return "Point to: " + arg + ".";
  if (task == "detect_visual_prompt")
    return "Detect all the objects in the image that belong to the category set: <visual_prompt>.";
  throw InvalidArgument(str_cat("unknown task '", task,
                                "': use detect, ground_single, ground_multi, ground_text, detect_text, ground_gui, "
                                "ground_gui_point, point or detect_visual_prompt"));
}

std::string render_chat(const std::string& question, int extra_images, ChatTemplate tmpl) {
  std::string out;
  if (tmpl == ChatTemplate::Worker) {
    out = "<|im_start|>system\nYou are a helpful assistant.\n<|im_end|>\n<|im_start|>user\n";
  } else {
    out = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n";
  }
  // Content items: image 1, text, then the extra images. The worker's template skips a placeholder
  // the user text already contains; the Jinja template always writes it.
  auto image_item = [&](int k) {
    const std::string token = "<image-" + std::to_string(k) + ">";
    if (tmpl == ChatTemplate::Eval || question.find(token) == std::string::npos) out += token;
  };
  image_item(1);
  out += question;
  for (int k = 0; k < extra_images; ++k) image_item(2 + k);
  out += "<|im_end|>\n<|im_start|>assistant\n";
  return out;
}

std::string expand_image_placeholders(const std::string& text, const std::vector<int64_t>& image_tokens,
                                      std::vector<int>* order) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '<') {
      const bool is_image = text.compare(i, 7, "<image-") == 0;
      const bool is_video = text.compare(i, 7, "<video-") == 0;
      if (is_image || is_video) {
        size_t j = i + 7;
        while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
        if (j > i + 7 && j < text.size() && text[j] == '>') {
          LA_CHECK(!is_video, InvalidArgument, "the prompt contains a video placeholder '", text.substr(i, j + 1 - i),
                   "'; videos are not supported, remove it from the question");
          const std::string digits = text.substr(i + 7, j - i - 7);
          LA_CHECK(digits.size() <= 6, InvalidArgument, "image placeholder index '", digits, "' is too large");
          const int k = std::stoi(digits);
          LA_CHECK(k >= 1 && k <= static_cast<int>(image_tokens.size()), InvalidArgument, "the prompt refers to <image-",
                   k, "> but only ", image_tokens.size(), " image(s) were given; remove the placeholder or pass the image");
          out += "<image " + std::to_string(k) + "><img>";
          for (int64_t t = 0; t < image_tokens[k - 1]; ++t) out += "<IMG_CONTEXT>";
          out += "</img>";
          if (order) order->push_back(k - 1);
          i = j + 1;
          continue;
        }
      }
    }
    out += text[i++];
  }
  return out;
}

}  // namespace la
