// Prompt assembly: the worker's task wordings, both chat-template variants, and the expansion of
// <image-K> placeholders into <image K><img><IMG_CONTEXT>×N</img>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace la {

// Which chat template renders the conversation.
enum class ChatTemplate {
  Worker,  // the official worker's py_apply_chat_template (system turn "...assistant.\n<|im_end|>")
  Eval,    // chat_template.json as the evaluation scripts render it ("...assistant.<|im_end|>")
};
ChatTemplate parse_chat_template(const std::string& name);  // "worker" | "eval"

// The worker's task prompts. task: detect | ground_single | ground_multi | ground_text | detect_text |
// ground_gui | ground_gui_point | point | detect_visual_prompt. `arg` is the phrase or the
// categories already joined with "</c>" (ignored by detect_text / detect_visual_prompt).
std::string task_prompt(const std::string& task, const std::string& arg);
// "a</c>b</c>c" as detect() joins its categories.
std::string join_categories(const std::vector<std::string>& categories);

// One user turn: image 1, the question text, then `extra_images` more images (visual prompts).
std::string render_chat(const std::string& question, int extra_images, ChatTemplate tmpl);

// Replaces every <image-K> (left to right) by "<image K><img>" + "<IMG_CONTEXT>"×tokens[K−1] +
// "</img>", and returns in `order` the 0-based image index of each placeholder met (the order in
// which vision features are spliced). Bad indices or <video-K> raise InvalidArgument.
std::string expand_image_placeholders(const std::string& text, const std::vector<int64_t>& image_tokens,
                                      std::vector<int>* order);

}  // namespace la
