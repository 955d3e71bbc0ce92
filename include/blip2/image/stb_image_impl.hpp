#pragma once
// stb_image, compiled into every translation unit that includes blip2's image decoder, with internal
// linkage (STB_IMAGE_STATIC): a header-only library cannot define STB_IMAGE_IMPLEMENTATION in
// exactly one place, so each translation unit gets its own private copy and programs with several
// of them link without duplicate symbols. Only the formats blip2 checks for truncation are built.
//
// Programs that already compile stb_image themselves (one .c/.cpp with STB_IMAGE_IMPLEMENTATION)
// may define BLIP2_STB_IMAGE_EXTERNAL to use that copy instead. Including <stb_image.h> yourself
// in a translation unit that also includes blip2's image headers is not supported otherwise.
#if defined(STBI_INCLUDE_STB_IMAGE_H) && !defined(BLIP2_STB_IMAGE_IMPL_DONE) && !defined(BLIP2_STB_IMAGE_EXTERNAL)
#error "blip2/image: <stb_image.h> was included before blip2's image headers; define BLIP2_STB_IMAGE_EXTERNAL to use your own stb_image implementation"
#endif

#ifndef BLIP2_STB_IMAGE_IMPL_DONE
#define BLIP2_STB_IMAGE_IMPL_DONE

#ifndef BLIP2_STB_IMAGE_EXTERNAL
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#endif
#endif  // !BLIP2_STB_IMAGE_EXTERNAL
// One include line (the single-header generator keeps each system include once).
#include <stb_image.h>
#ifndef BLIP2_STB_IMAGE_EXTERNAL
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef STB_IMAGE_IMPLEMENTATION
#endif  // !BLIP2_STB_IMAGE_EXTERNAL

namespace blip2::image::detail {
// stb_image's reason for its last failure: it gives none (a null pointer) for some inputs.
inline const char* stb_failure() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "no reason given";
}
}  // namespace blip2::image::detail

#endif  // BLIP2_STB_IMAGE_IMPL_DONE
