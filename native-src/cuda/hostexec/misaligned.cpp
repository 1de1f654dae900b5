// The one check of -fsanitize=alignment, which the harness library is compiled with: a typed
// access (a 16-byte vector or pack, a float...) at an address its type's alignment forbids,
// which faults on the GPU and, as an aligned SSE move, crashes the host. This file is compiled
// without the sanitizer: GCC declares the hook itself as nothrow for instrumented code.
//
// The instrumented caller cannot unwind through the hook, so it does not return into a
// kernel: abandon_thread ends the kernel thread where it stands and the launch fails with the
// message. Outside a kernel (host code of the library) the access is reported and goes ahead.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "cuda_host.hpp"

namespace {

// GCC's (and Clang's) layout of the hook's static data, version 1.
struct SourceLocation {
    const char *file;
    uint32_t line, column;
};
struct TypeDescriptor {
    uint16_t kind, info;
    char name[1];
};
struct TypeMismatchData {
    SourceLocation location;
    const TypeDescriptor *type;
    unsigned char log_alignment, check_kind;
};

const char *access_kind(unsigned kind) {
    static const char *const kinds[] = {"load of", "store to", "reference binding to", "member access within",
                                        "member call on", "constructor call on"};
    return kind < sizeof kinds / sizeof *kinds ? kinds[kind] : "access to";
}

} // namespace

extern "C" __attribute__((visibility("hidden"))) void __ubsan_handle_type_mismatch_v1(void *raw, void *pointer) {
    const auto *data = static_cast<const TypeMismatchData *>(raw);
    const char *slash = std::strrchr(data->location.file, '/');
    char where[64];
    std::snprintf(where, sizeof where, ":%" PRIu32 ":%" PRIu32, data->location.line, data->location.column);
    const std::string what = std::string("misaligned ") + access_kind(data->check_kind) + " " +
                             pmoe_host::address(pointer) + " at " + (slash ? slash + 1 : data->location.file) +
                             where + ": type " + data->type->name + " needs " +
                             std::to_string(1u << data->log_alignment) + "-byte alignment";
    if (!pmoe_host::abandon_thread(what)) std::fprintf(stderr, "pmoe_host: %s\n", what.c_str());
}
