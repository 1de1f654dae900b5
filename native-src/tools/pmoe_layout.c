/* Prints the layout of every ABI struct as "struct <name> <sizeof>" and
 * "field <struct>.<field> <offsetof> <sizeof>" lines; the bindings test compares them with the
 * Java MemoryLayouts. Add a line here for every struct added to panamoe.h. */
#include <stddef.h>
#include <stdio.h>

#include "panamoe.h"

#define STRUCT(s) printf("struct %s %zu\n", #s, sizeof(s))
#define FIELD(s, f) printf("field %s.%s %zu %zu\n", #s, #f, offsetof(s, f), sizeof(((s *)0)->f))

int main(void) {
    STRUCT(pmoe_router_config);
    FIELD(pmoe_router_config, tokens);
    FIELD(pmoe_router_config, experts);
    FIELD(pmoe_router_config, top_k);
    FIELD(pmoe_router_config, score_func);
    FIELD(pmoe_router_config, renormalize);
    FIELD(pmoe_router_config, reserved);

    STRUCT(pmoe_dispatch_config);
    FIELD(pmoe_dispatch_config, tokens);
    FIELD(pmoe_dispatch_config, top_k);
    FIELD(pmoe_dispatch_config, logical_experts);
    FIELD(pmoe_dispatch_config, physical_experts);
    FIELD(pmoe_dispatch_config, capacity);
    FIELD(pmoe_dispatch_config, drop_policy);
    return 0;
}
