package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// goField is what encoding/json does with one struct field, which swag does not record.
type goField struct {
	pointer   bool // nil encodes as null
	omitEmpty bool // a zero value leaves the key out
	time      bool // time.Time: RFC 3339, which swag leaves as a plain string
}

// goStruct is one Go struct that swag may have turned into a schema.
type goStruct struct {
	pkg, name string
	fields    map[string]goField // by JSON name
	embeds    []string           // "pkg.Type" of embedded structs whose fields are promoted
}

// structIndex finds the Go struct behind a swag definition name: "pkg.Type", a "// @name"
// alias, or a generic instance "pkg.Type-Arg".
type structIndex struct {
	byType  map[string]*goStruct // "pkg.Type"
	byAlias map[string]*goStruct
}

var aliasComment = regexp.MustCompile(`(?i)^@name\s+(\S+)`)

// indexStructs parses the non-test Go files of dirs (relative to root) without type checking:
// the generator must run even while a package does not compile.
func indexStructs(root string, dirs []string) (*structIndex, error) {
	idx := &structIndex{byType: map[string]*goStruct{}, byAlias: map[string]*goStruct{}}
	err := eachFile(root, dirs, func(f *ast.File) {
		pkg := f.Name.Name
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts, ok := spec.(*ast.TypeSpec)
				if !ok {
					continue
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				s := &goStruct{pkg: pkg, name: ts.Name.Name, fields: map[string]goField{}}
				collectFields(s, st)
				idx.byType[pkg+"."+s.name] = s
				if ts.Comment != nil {
					if m := aliasComment.FindStringSubmatch(strings.TrimSpace(ts.Comment.Text())); m != nil {
						idx.byAlias[m[1]] = s
					}
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

func collectFields(s *goStruct, st *ast.StructType) {
	for _, f := range st.Fields.List {
		var tag reflect.StructTag
		if f.Tag != nil {
			if v, err := strconv.Unquote(f.Tag.Value); err == nil {
				tag = reflect.StructTag(v)
			}
		}
		jsonName, opts, _ := strings.Cut(tag.Get("json"), ",")
		if jsonName == "-" && opts == "" {
			continue
		}
		fld := goField{omitEmpty: hasOption(opts, "omitempty") || hasOption(opts, "omitzero")}
		typ := f.Type
		if star, ok := typ.(*ast.StarExpr); ok {
			fld.pointer, typ = true, star.X
		}
		if sel, ok := typ.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && sel.Sel.Name == "Time" {
				fld.time = true
			}
		}
		if len(f.Names) == 0 {
			// An embedded struct without a JSON name has its fields promoted.
			if jsonName == "" {
				if ref := embeddedType(s.pkg, f.Type); ref != "" {
					s.embeds = append(s.embeds, ref)
				}
				continue
			}
			s.fields[jsonName] = fld
			continue
		}
		for _, n := range f.Names {
			if !n.IsExported() {
				continue
			}
			name := jsonName
			if name == "" {
				name = n.Name
			}
			s.fields[name] = fld
		}
	}
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func embeddedType(pkg string, e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return embeddedType(pkg, t.X)
	case *ast.Ident:
		return pkg + "." + t.Name
	case *ast.SelectorExpr:
		if x, ok := t.X.(*ast.Ident); ok {
			return x.Name + "." + t.Sel.Name
		}
	}
	return ""
}

// lookup returns the struct behind a swag definition name, or nil.
func (idx *structIndex) lookup(def string) *goStruct {
	head, _, _ := strings.Cut(def, "-")
	if s := idx.byAlias[head]; s != nil {
		return s
	}
	dot := strings.LastIndex(head, ".")
	if dot < 0 {
		return nil
	}
	pkg, name := head[:dot], head[dot+1:]
	// A name swag made unique spells the whole import path with '_' for '/' and '.'.
	if i := strings.LastIndex(pkg, "_"); i >= 0 {
		pkg = pkg[i+1:]
	}
	return idx.byType[pkg+"."+name]
}

// field returns what encoding/json does with the JSON key name of s, following promoted fields.
func (idx *structIndex) field(s *goStruct, name string) (goField, bool) {
	return idx.fieldDepth(s, name, 0)
}

func (idx *structIndex) fieldDepth(s *goStruct, name string, depth int) (goField, bool) {
	if f, ok := s.fields[name]; ok {
		return f, true
	}
	if depth > 8 {
		return goField{}, false
	}
	for _, e := range s.embeds {
		if inner := idx.byType[e]; inner != nil {
			if f, ok := idx.fieldDepth(inner, name, depth+1); ok {
				return f, true
			}
		}
	}
	return goField{}, false
}

var routerComment = regexp.MustCompile(`^@Router\s+(\S+)\s+\[(\w+)\]`)
var idComment = regexp.MustCompile(`^@ID\s+(\S+)`)

// indexRoutes maps "METHOD /path" of every @Router annotation without an @ID to an operationId
// named after the handler, so operation ids follow the Go code without anyone writing them.
// A handler documenting several operations (the inspector's ANY route) gets one id per method.
func indexRoutes(root string, dirs []string) (map[string]string, error) {
	type route struct{ method, path string }
	byFunc := map[string][]route{}
	var funcs []string
	err := eachFile(root, dirs, func(f *ast.File) {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Doc == nil {
				continue
			}
			var routes []route
			explicitID := false
			for _, line := range strings.Split(fd.Doc.Text(), "\n") {
				line = strings.TrimSpace(line)
				if m := routerComment.FindStringSubmatch(line); m != nil {
					routes = append(routes, route{strings.ToUpper(m[2]), m[1]})
				}
				if idComment.MatchString(line) {
					explicitID = true
				}
			}
			if len(routes) == 0 || explicitID {
				continue
			}
			name := fd.Name.Name
			if _, seen := byFunc[name]; !seen {
				funcs = append(funcs, name)
			}
			byFunc[name] = append(byFunc[name], routes...)
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(funcs)
	ids := map[string]string{}
	used := map[string]string{}
	for _, name := range funcs {
		routes := byFunc[name]
		paths := map[string]bool{}
		for _, r := range routes {
			paths[r.path] = true
		}
		for _, r := range routes {
			id := name
			if len(routes) > 1 {
				id += title(r.method)
			}
			if len(paths) > 1 {
				id += pathSuffix(r.path)
			}
			key := r.method + " " + r.path
			if prev, dup := used[id]; dup {
				return nil, fmt.Errorf("operationId %q would name both %s and %s: give one of them an @ID", id, prev, key)
			}
			used[id] = key
			ids[key] = id
		}
	}
	return ids, nil
}

func title(s string) string {
	s = strings.ToLower(s)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// pathSuffix turns "/inspect/{id}/{path}" into "InspectIdPath".
func pathSuffix(p string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		b.WriteString(title(part))
	}
	return b.String()
}

// eachFile parses every non-test Go file directly in dirs, in a stable order.
func eachFile(root string, dirs []string, fn func(*ast.File)) error {
	fset := token.NewFileSet()
	for _, dir := range dirs {
		matches, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		sort.Strings(matches)
		for _, path := range matches {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			f, err := parser.ParseFile(fset, path, src, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return fmt.Errorf("parse %s: %w", path, err)
			}
			fn(f)
		}
	}
	return nil
}

// optionalType is api's wrapper for an input field whose absence means something (a PATCH
// leaves it alone); on the wire the field is simply its type argument.
const optionalType = "Optional"

// optionalOverrides tells swag to document every Optional[T] field declared in dirs as T:
// left alone, swag describes the wrapper struct, an object, and drops the field's example.
// The keys are how swag names the instance: the declaring package, then the type argument.
func optionalOverrides(root string, dirs []string) (map[string]string, error) {
	overrides := map[string]string{}
	var bad error
	err := eachFile(root, dirs, func(f *ast.File) {
		pkg := f.Name.Name
		ast.Inspect(f, func(n ast.Node) bool {
			st, ok := n.(*ast.StructType)
			if !ok {
				return true
			}
			for _, fld := range st.Fields.List {
				// Also an Optional inside a field's type: []Optional[T] holds items that
				// each say what was wrong with them.
				ast.Inspect(fld.Type, func(n ast.Node) bool {
					ix, ok := n.(*ast.IndexExpr)
					if !ok {
						return true
					}
					if id, ok := ix.X.(*ast.Ident); !ok || id.Name != optionalType {
						return true
					}
					arg, err := qualifiedType(pkg, ix.Index)
					if err != nil && bad == nil {
						bad = fmt.Errorf("%s.%s[%s]: %w", pkg, optionalType, types.ExprString(ix.Index), err)
					}
					// swag spells the type argument as written for a slice's items and
					// qualified for a field: name both.
					overrides[pkg+"."+optionalType+"["+types.ExprString(ix.Index)+"]"] = arg
					overrides[pkg+"."+optionalType+"["+arg+"]"] = arg
					return true
				})
			}
			return true
		})
	})
	if err == nil {
		err = bad
	}
	return overrides, err
}

// qualifiedType spells a type expression written in package pkg the way swag's overrides
// name types: the package's own types with its name in front.
func qualifiedType(pkg string, e ast.Expr) (string, error) {
	switch t := e.(type) {
	case *ast.Ident:
		if _, builtin := types.Universe.Lookup(t.Name).(*types.TypeName); builtin {
			return t.Name, nil
		}
		return pkg + "." + t.Name, nil
	case *ast.SelectorExpr:
		return types.ExprString(t), nil
	case *ast.ArrayType:
		if t.Len == nil {
			elem, err := qualifiedType(pkg, t.Elt)
			return "[]" + elem, err
		}
	}
	return "", errors.New("only named types and slices of them can be optional")
}
