#pragma once
// blip2 version; CMake parses these three lines.
#define BLIP2_VERSION_MAJOR 0
#define BLIP2_VERSION_MINOR 1
#define BLIP2_VERSION_PATCH 0
