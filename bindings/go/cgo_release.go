//go:build fasten_release

package fasten

// #cgo LDFLAGS: -L${SRCDIR}/../../target/release
import "C"
