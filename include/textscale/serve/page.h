// The page GET / answers: src/serve/page.html, compiled into the binary (cmake/EmbedText.cmake).
// One self-contained HTML document (inline CSS and JavaScript, nothing fetched from elsewhere): a
// text box, a button, and one bar a class as wide as its probability.
#pragma once

#include <string_view>

namespace textscale::serve {

extern const std::string_view kPageHtml;

}  // namespace textscale::serve
