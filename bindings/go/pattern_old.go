//go:build !go1.23

package fasten

import "net/http"

// pattern: before Go 1.23 the mux does not say; the api row takes the path.
func pattern(*http.Request) string { return "" }
