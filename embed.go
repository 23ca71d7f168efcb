package main

import (
	"embed"
	"io/fs"
)

// uiFS holds the built admin UI. ui/dist is committed so that a plain
// `go build` or `go run .` ships the whole product without Node installed;
// "all:" keeps files whose names start with "." or "_" that Vite may emit.
//
//go:embed all:ui/dist
var uiFS embed.FS

// uiDist returns the built UI rooted at ui/dist (index.html at its top).
func uiDist() fs.FS {
	sub, err := fs.Sub(uiFS, "ui/dist")
	if err != nil {
		// fs.Sub only fails on an invalid path, and this one is a constant.
		panic(err)
	}
	return sub
}
