// A fast 64-bit checksum of bytes (four independent multiply-xorshift lanes, then folded), used to
// verify tensors of files that other processes wrote. Not cryptographic: it catches flipped,
// zeroed or truncated data, not tampering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace la {

uint64_t checksum64(const void* data, size_t n);
// 16 lower-case hex digits.
std::string checksum_hex(uint64_t v);

}  // namespace la
