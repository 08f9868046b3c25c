package mapping

import (
	"sort"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// CostLimit bounds the cost of one evaluation of an expression, in CEL's
// cost units (about one per operation, and one per few bytes that a string
// function reads or builds). An evaluation that exceeds it fails the row, so
// no expression can stall a capture or an apply.
const CostLimit = 10_000

// The variables expressions read.
const (
	rowVar    = "row"    // field expressions: the system row, by column
	fieldsVar = "fields" // to_system expressions: the collection row, by field
)

// expr is a compiled expression over one variable, a map by name.
type expr struct {
	src    string
	prg    cel.Program
	out    *cel.Type // static output type (dyn when unknown)
	inputs []string  // the names it reads from its variable, sorted
	vr     string
}

var envs = map[string]*cel.Env{}

func init() {
	for _, vr := range []string{rowVar, fieldsVar} {
		env, err := cel.NewEnv(cel.Variable(vr, cel.MapType(cel.StringType, cel.DynType)), ext.Strings())
		if err != nil {
			panic(errors.Wrapf(err, "mapping: cel environment for %s", vr))
		}
		envs[vr] = env
	}
}

// compileExpr compiles and type-checks src over variable vr. The expression
// may read vr only by constant names (vr.name or vr['name']), which are its
// inputs.
func compileExpr(src, vr string) (*expr, error) {
	if src == "" {
		return nil, errors.New("empty expression")
	}
	env := envs[vr]
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, errors.Newf("%s", iss.Err())
	}
	inputs, err := exprInputs(ast.NativeRep().Expr(), vr)
	if err != nil {
		return nil, err
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit))
	if err != nil {
		return nil, errors.Wrap(err, "build program")
	}
	return &expr{src: src, prg: prg, out: ast.OutputType(), inputs: inputs, vr: vr}, nil
}

// exprInputs returns the names an expression reads from vr, and refuses any
// other use of vr (the whole map, a computed name).
func exprInputs(root celast.Expr, vr string) ([]string, error) {
	names := map[string]bool{}
	allowed := map[int64]bool{} // ids of vr identifiers read by a constant name
	var idents []int64
	celast.PostOrderVisit(root, celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			if e.AsIdent() == vr {
				idents = append(idents, e.ID())
			}
		case celast.SelectKind:
			sel := e.AsSelect()
			if op := sel.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == vr {
				names[sel.FieldName()] = true
				allowed[op.ID()] = true
			}
		case celast.CallKind:
			call := e.AsCall()
			if call.FunctionName() != operators.Index || len(call.Args()) != 2 {
				return
			}
			op, key := call.Args()[0], call.Args()[1]
			if op.Kind() == celast.IdentKind && op.AsIdent() == vr && key.Kind() == celast.LiteralKind {
				if s, ok := key.AsLiteral().(types.String); ok {
					names[string(s)] = true
					allowed[op.ID()] = true
				}
			}
		}
	}))
	for _, id := range idents {
		if !allowed[id] {
			return nil, errors.WithHintf(errors.Newf("%s is read other than by a constant name", vr),
				"read values as %s.name or %s['name']", vr, vr)
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// celType is the CEL type of a collection kind's values: JSON documents are
// their text.
func celType(k crdt.Kind) *cel.Type {
	switch k {
	case crdt.KindBool:
		return cel.BoolType
	case crdt.KindInt:
		return cel.IntType
	case crdt.KindFloat:
		return cel.DoubleType
	case crdt.KindString, crdt.KindJSON:
		return cel.StringType
	case crdt.KindBytes:
		return cel.BytesType
	case crdt.KindTime:
		return cel.TimestampType
	case crdt.KindList:
		return cel.ListType(cel.DynType)
	}
	return cel.NullType
}

// outputFits reports whether an expression of static type out may give
// values of kind k: dyn and null may give anything, an int becomes a float.
func outputFits(out *cel.Type, k crdt.Kind) bool {
	if out.IsDyn() || out.IsExactType(cel.NullType) {
		return true
	}
	if k == crdt.KindFloat && out.IsExactType(cel.IntType) {
		return true
	}
	return celType(k).IsAssignableType(out)
}

// outputKind is the kind an expression's static output type names (null
// when dyn or a type no kind has).
func outputKind(out *cel.Type) crdt.Kind {
	for _, k := range []crdt.Kind{crdt.KindBool, crdt.KindInt, crdt.KindFloat, crdt.KindString, crdt.KindBytes, crdt.KindTime, crdt.KindList} {
		if !out.IsDyn() && celType(k).IsAssignableType(out) {
			return k
		}
	}
	return crdt.KindNull
}

// eval evaluates e over row, a missing input as null, and converts the
// result to kind want (null: any kind).
func (e *expr) eval(row crdt.Row, want crdt.Kind) (crdt.Value, error) {
	in := make(map[string]ref.Val, len(e.inputs))
	for _, n := range e.inputs {
		v, err := toCEL(row[n])
		if err != nil {
			return crdt.Value{}, errors.Wrapf(err, "%s.%s", e.vr, n)
		}
		in[n] = v
	}
	out, _, err := e.prg.Eval(map[string]any{e.vr: types.NewMap(types.DefaultTypeAdapter, in)})
	if err != nil {
		return crdt.Value{}, errors.Newf("evaluate %s: %s", e.src, err)
	}
	v, err := fromCEL(out)
	if err != nil {
		return crdt.Value{}, errors.Wrapf(err, "result of %s", e.src)
	}
	return coerce(v, want)
}

// coerce converts v to kind want where the kinds differ only in form: an
// int to a float, a text to a JSON document. Null and want null pass.
func coerce(v crdt.Value, want crdt.Kind) (crdt.Value, error) {
	switch {
	case v.IsNull() || want == crdt.KindNull || v.Kind() == want:
		return v, nil
	case want == crdt.KindFloat && v.Kind() == crdt.KindInt:
		return crdt.Float(float64(v.AsInt())), nil
	case want == crdt.KindJSON && v.Kind() == crdt.KindString:
		return crdt.JSON(v.AsBytes())
	}
	return crdt.Value{}, errors.Newf("want %s, got %s %s", want, v.Kind(), v)
}

// toCEL converts a value to CEL: JSON documents as their text, lists as
// lists.
func toCEL(v crdt.Value) (ref.Val, error) {
	switch v.Kind() {
	case crdt.KindNull:
		return types.NullValue, nil
	case crdt.KindBool:
		return types.Bool(v.AsBool()), nil
	case crdt.KindInt:
		return types.Int(v.AsInt()), nil
	case crdt.KindFloat:
		return types.Double(v.AsFloat()), nil
	case crdt.KindString, crdt.KindJSON:
		return types.String(v.AsString()), nil
	case crdt.KindBytes:
		return types.Bytes(v.AsBytes()), nil
	case crdt.KindTime:
		return types.Timestamp{Time: v.AsTime()}, nil
	case crdt.KindList:
		elems := make([]ref.Val, len(v.AsList()))
		for i, e := range v.AsList() {
			c, err := toCEL(e)
			if err != nil {
				return nil, err
			}
			elems[i] = c
		}
		return types.NewRefValList(types.DefaultTypeAdapter, elems), nil
	}
	return nil, errors.Newf("a %s value has no CEL form", v.Kind())
}

// fromCEL converts an expression's result to a value: unsigned integers
// that fit become ints, lists of scalars become lists; maps, durations and
// other types are refused.
func fromCEL(v ref.Val) (crdt.Value, error) {
	switch x := v.(type) {
	case types.Null:
		return crdt.Null(), nil
	case types.Bool:
		return crdt.Bool(bool(x)), nil
	case types.Int:
		return crdt.Int(int64(x)), nil
	case types.Uint:
		if uint64(x) > 1<<63-1 {
			return crdt.Value{}, errors.Newf("uint %d does not fit an int", uint64(x))
		}
		return crdt.Int(int64(x)), nil
	case types.Double:
		return crdt.Float(float64(x)), nil
	case types.String:
		return crdt.String(string(x)), nil
	case types.Bytes:
		return crdt.Bytes([]byte(x)), nil
	case types.Timestamp:
		return crdt.Time(x.Time), nil
	case traits.Lister:
		n, ok := x.Size().(types.Int)
		if !ok {
			return crdt.Value{}, errors.New("list of unknown size")
		}
		elems := make([]crdt.Value, int(n))
		for i := range elems {
			e, err := fromCEL(x.Get(types.Int(i)))
			if err != nil {
				return crdt.Value{}, errors.Wrapf(err, "element %d", i)
			}
			elems[i] = e
		}
		return crdt.List(elems...)
	case *types.Err:
		return crdt.Value{}, x
	}
	return crdt.Value{}, errors.Newf("a CEL %s has no value form", v.Type().TypeName())
}
