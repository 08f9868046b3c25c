package crdt

import (
	"strconv"
	"strings"
)

// String renders the whole state of r on one line for people (test failures,
// debugging): its delete and write stamps, then each field's register writes
// (newest first) and OR-set elements with their dots and causal context. It
// is not a serialization; use AppendRecord for that.
//
//	del=<stamp> wr=<stamp> | name: v@stamp[<source>] ... | tags: {v: r:n@stamp ...} ctx=[r:n ...]+[r:n ...] | n: #[+p-n@stamp ...]
func (r *Record) String() string {
	if r.IsEmpty() {
		return "<empty>"
	}
	var b strings.Builder
	b.WriteString("del=")
	writeStamp(&b, r.Deleted)
	b.WriteString(" wr=")
	writeStamp(&b, r.Written)
	if !r.Reset.IsZero() {
		b.WriteString(" reset=")
		writeStamp(&b, r.Reset)
	}
	for i := range r.Fields {
		f := &r.Fields[i]
		b.WriteString(" | ")
		b.WriteString(f.Name)
		b.WriteString(":")
		for _, w := range f.Reg {
			b.WriteString(" ")
			b.WriteString(w.Value.String())
			b.WriteString("@")
			writeStamp(&b, w.Stamp)
			if w.Source != "" {
				b.WriteString("<" + w.Source + ">")
			}
		}
		if f.Set != nil {
			b.WriteString(" {")
			for j, e := range f.Set.Elems {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(e.Value.String())
				b.WriteString(":")
				for _, en := range e.Entries {
					b.WriteString(" ")
					writeDot(&b, en.Dot())
					b.WriteString("@")
					writeStamp(&b, en.Stamp)
				}
			}
			b.WriteString("} ctx=")
			writeDots(&b, f.Set.Ctx.VV)
			if len(f.Set.Ctx.Cloud) > 0 {
				b.WriteString("+")
				writeDots(&b, f.Set.Ctx.Cloud)
			}
		}
		if len(f.Ctr) > 0 {
			b.WriteString(" #[")
			for j, e := range f.Ctr {
				if j > 0 {
					b.WriteString(" ")
				}
				b.WriteString("+" + e.P.String() + "-" + e.N.String() + "@")
				writeStamp(&b, e.Stamp)
			}
			b.WriteString("]")
		}
	}
	return b.String()
}

func writeStamp(b *strings.Builder, s Stamp) {
	if s.IsZero() {
		b.WriteString("0")
		return
	}
	b.WriteString(s.String())
}

func writeDot(b *strings.Builder, d Dot) {
	b.WriteString(d.Replica.String())
	b.WriteString(":")
	b.WriteString(strconv.FormatUint(d.Counter, 10))
}

func writeDots(b *strings.Builder, ds []Dot) {
	b.WriteString("[")
	for i, d := range ds {
		if i > 0 {
			b.WriteString(" ")
		}
		writeDot(b, d)
	}
	b.WriteString("]")
}

// String renders the fragments of d, one per line, for people.
func (d *Delta) String() string {
	if d.Len() == 0 {
		return "<empty delta>"
	}
	var b strings.Builder
	for i := range d.Fragments {
		f := &d.Fragments[i]
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(MakeID(f.Collection, f.Key).String())
		b.WriteString(" ")
		b.WriteString(f.Record.String())
	}
	return b.String()
}
