// Command openapigen regenerates openapi/ from the swag annotations in api/: the Swagger 2.0
// document swag v1 produces (refined, see refine.go), its OpenAPI 3 conversion by kin-openapi
// (see v3.go) with the event catalogue's schemas (events.go) and an example on every schema,
// each validated (examples.go), and the UI's TypeScript types by openapi-typescript. The Go
// client is generated from its output by oapi-codegen (see the Makefile).
//
// Run it with `make openapi` or `go generate ./...`; `make openapi-check` runs it into a
// temporary directory and fails when the committed files differ. The output depends only on the
// source: no dates, no absolute paths, sorted keys.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/swaggo/swag"
)

// searchDirs hold the annotated handlers; the first one holds doc.go, swag's "main API file".
var searchDirs = []string{"api", "inspector"}

const mainAPIFile = "doc.go"

func main() {
	log.SetFlags(0)
	log.SetPrefix("openapigen: ")
	root := flag.String("root", "", "module root (default: the directory holding go.mod, searched upward)")
	out := flag.String("out", "", "output directory for swagger.json and openapi.json (default <root>/openapi)")
	ts := flag.String("ts", "", "TypeScript types file (default <root>/ui/src/lib/api-types.d.ts; \"-\" skips it)")
	verbose := flag.Bool("v", false, "show swag's progress")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, *root, *out, *ts, *verbose); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, root, out, ts string, verbose bool) error {
	var err error
	if root == "" {
		if root, err = findModuleRoot(); err != nil {
			return err
		}
	}
	if root, err = filepath.Abs(root); err != nil {
		return fmt.Errorf("module root: %w", err)
	}
	if out == "" {
		out = filepath.Join(root, "openapi")
	}
	if ts == "" {
		ts = filepath.Join(root, "ui", "src", "lib", "api-types.d.ts")
	}
	if out, err = filepath.Abs(out); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	if ts != "-" {
		if ts, err = filepath.Abs(ts); err != nil {
			return fmt.Errorf("types file: %w", err)
		}
	}
	// swag runs `go list` on the packages it reads; paths relative to the root keep absolute
	// paths out of its output.
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if err := os.Chdir(root); err != nil {
		return fmt.Errorf("enter module root: %w", err)
	}
	defer func() { _ = os.Chdir(wd) }()
	if err := ensureEmbeddedDocument(root); err != nil {
		return err
	}

	overrides, err := optionalOverrides(root, searchDirs)
	if err != nil {
		return err
	}
	swagger, err := parseAnnotations(verbose, overrides)
	if err != nil {
		return err
	}
	structs, err := indexStructs(root, append([]string{"models"}, searchDirs...))
	if err != nil {
		return err
	}
	routes, err := indexRoutes(root, searchDirs)
	if err != nil {
		return err
	}
	v2, err := refineSwagger(swagger, structs, routes)
	if err != nil {
		return err
	}
	v3, err := toOpenAPI3(ctx, v2)
	if err != nil {
		return err
	}
	backport(v2, v3)

	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	if err := writeFile(filepath.Join(out, "swagger.json"), v2); err != nil {
		return err
	}
	openapiPath := filepath.Join(out, "openapi.json")
	if err := writeFile(openapiPath, v3); err != nil {
		return err
	}
	if ts != "-" {
		if err := generateTypes(ctx, root, openapiPath, ts); err != nil {
			return err
		}
	}
	return nil
}

// findModuleRoot walks up from the working directory to go.mod, so `go generate` (run in api/)
// and `go run` from the root both work.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: pass -root")
		}
		dir = parent
	}
}

// ensureEmbeddedDocument writes a placeholder openapi/openapi.json when there is none: the api
// package embeds it, and swag's `go list` of that package fails on an embed pattern that
// matches nothing, so a fresh checkout without the file could never generate it.
func ensureEmbeddedDocument(root string) error {
	p := filepath.Join(root, "openapi", "openapi.json")
	if _, err := os.Stat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create openapi/: %w", err)
	}
	if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
		return fmt.Errorf("write placeholder %s: %w", p, err)
	}
	return nil
}

// modulePath reads the module line of go.mod.
func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", errors.New("go.mod has no module line")
}

// quietDebugger drops swag's progress lines ("Generating api.Webhook") unless -v.
type quietDebugger struct{ verbose bool }

func (d quietDebugger) Printf(format string, v ...any) {
	if d.verbose {
		log.Printf(format, v...)
	}
}

// parseAnnotations runs swag v1's parser as `swag init -g doc.go -d api,inspector
// --parseDependency` would, with overrides replacing types, and returns its Swagger 2.0 document
// as JSON.
func parseAnnotations(verbose bool, overrides map[string]string) ([]byte, error) {
	module, err := modulePath("go.mod")
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, d := range searchDirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dirs = append(dirs, "./"+d)
		}
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("none of %v exists under the module root", searchDirs)
	}
	p := swag.New(
		swag.SetParseDependency(int(swag.ParseModels)),
		swag.ParseUsingGoList(true),
		swag.SetDebugger(quietDebugger{verbose}),
		swag.SetStrict(true),
		// Types come only from this module; parsing gin, gorm and the rest takes seconds.
		swag.SetPackagePrefix(module),
		swag.SetOverrides(overrides),
	)
	if err := p.ParseAPIMultiSearchDir(dirs, mainAPIFile, 100); err != nil {
		return nil, fmt.Errorf("swag: %w", err)
	}
	doc := p.GetSwagger()
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode swag's document: %w", err)
	}
	return b, nil
}

// writeFile writes v as indented JSON with a final newline, only when the bytes change, so an
// unchanged document keeps its modification time.
func writeFile(path string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	// Re-encode: the documents' own marshalers escape HTML, and descriptions hold `<token>`
	// and `&` that should stay readable in the committed file.
	out, err := documentJSON(raw)
	if err != nil {
		return fmt.Errorf("re-encode %s: %w", filepath.Base(path), err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, out) {
		return nil
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// generateTypes runs openapi-typescript (installed by `make deps` into openapi/node_modules) on
// the OpenAPI 3 document. Missing tools are an error, not a skip: a skipped step would leave
// stale types behind that `make openapi-check` then reports far from the cause.
func generateTypes(ctx context.Context, root, openapiPath, ts string) error {
	bin := filepath.Join(root, "openapi", "node_modules", ".bin", "openapi-typescript")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("openapi-typescript is not installed (%s): run `make deps`, or pass -ts=- to skip the UI types", bin)
	}
	if err := os.MkdirAll(filepath.Dir(ts), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(ts), err)
	}
	tmp := ts + ".tmp"
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, openapiPath, "--output", tmp)
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("openapi-typescript: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	b, err := os.ReadFile(tmp)
	_ = os.Remove(tmp)
	if err != nil {
		return fmt.Errorf("read generated types: %w", err)
	}
	b = append([]byte(typesHeader), b...)
	if old, err := os.ReadFile(ts); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.WriteFile(ts, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", ts, err)
	}
	return nil
}

const typesHeader = "// Generated by `make openapi` from openapi/openapi.json with openapi-typescript. Do not edit.\n\n"
