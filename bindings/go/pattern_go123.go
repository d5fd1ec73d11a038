//go:build go1.23

package fasten

import "net/http"

// pattern is the route template the standard mux matched (Go 1.23+).
func pattern(r *http.Request) string {
	p := r.Pattern
	// "GET /users/{id}" -> "/users/{id}"
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[i:]
		}
	}
	return p
}
