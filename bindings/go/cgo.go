package fasten

// The engine is the Rust static library built by
// `cargo build -p fasten-ffi` into the repo's target/ directory (debug by
// default; build with `-tags fasten_release` for target/release). When
// cargo builds elsewhere (CARGO_TARGET_DIR), point the linker there:
// CGO_LDFLAGS=-L$CARGO_TARGET_DIR/debug.

/*
#cgo CFLAGS: -I${SRCDIR}/../../crates/fasten-ffi/include
#cgo LDFLAGS: -l:libfasten_ffi.a -lpthread -ldl -lm
#include <stdlib.h>
#include "fasten.h"
*/
import "C"
