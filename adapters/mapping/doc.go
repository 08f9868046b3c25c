// Package mapping translates between a system's schema and the cluster's
// collections: the per-sidecar mapping of docs/mapping.md. It is pure: no
// I/O, no clock, no goroutines. A wrapper around an adapters.Adapter applies
// it, so the engine sees only collection space: captured rows go through
// TableMap.ToCollection, merged rows through TableMap.ToSystem, and the
// catalog through TableMap.Describe. Merge rules stay cluster-wide; a
// mapping is local to one sidecar.
//
// Compile validates a Config and names the offending key in every error
// (mapping.tables.<table>.columns.<column>.values) with a hint.
//
// # Columns and fields
//
// A table maps to one collection (default: its own name); no two tables of
// a system map to one collection. A column maps to a field (default: its own
// name); no field is produced twice, by two columns or by a column and an
// expression. A local column is never synced: the adapter leaves it out of
// captures and applies (adapters.Options.Local, from Map.Local), and an
// insert gives it its configured default. A local column takes no other
// option, and no expression may read it.
//
// # Value maps
//
// A value map ('A': 'Active') must be bijective on the values it names:
// Compile refuses two system values that map to one collection value,
// naming both. A text the map does not name passes unchanged in both
// directions, unless it is a value the map names on the other side only:
// 'Active' captured from the system, where 'A' maps to 'Active', would map
// back to 'A', so it is refused. With this rule a value map is a bijection
// on every text it accepts, and system -> collection -> system is the
// identity. Value maps apply to text; with convert: text they apply to the
// text of the system's integers.
//
// # Conversions
//
// Each conversion is a bijection between the system values it accepts and
// the collection values it accepts; it refuses, with an error naming the
// table, column and value, anything it would not give back unchanged, so a
// round trip never changes a value. Null stays null.
//
//   - int: system text "-12" <-> int -12. Only canonical decimal text
//     ("012", "+1" and " 1" are refused).
//   - text: system int <-> text, the inverse of int.
//   - bool:<true>/<false> (bool:Y/N, bool:1/0, bool:yes/no): system text
//     <-> bool. Other texts are refused.
//   - time:<Go layout> (time:2006-01-02, time:2006-01-02 15:04:05): system
//     text <-> time. Only text that the layout renders back unchanged from
//     the time in UTC is accepted, and only times the layout holds without
//     loss are written back.
//   - time:unix, time:unixms: system integer seconds or milliseconds since
//     the Unix epoch <-> time; a time with a finer fraction is refused.
//   - cents: system integer cents <-> decimal text "12.34" ("-0.05", "0.00").
//   - decimal:<N> (N from 0 to 18): system integer scaled by 10^N <->
//     decimal text with exactly N digits after the point, no leading zeros.
//
// # Expressions
//
// What a map cannot say is written in CEL (cel.dev/cel-go, with the strings
// extension: split, join, trim, lowerAscii, ...). A computed field
// (TableConfig.Fields) is an expression over row, the system row by column
// name; a column computed back (ColumnConfig.ToSystem) is an expression over
// fields, the collection row by field name. An expression reads its
// variable only by constant names (row.full_name, row['Full Name']): those
// are its inputs, checked against the table by Describe. An expression
// whose inputs are all null gives null without running; otherwise it sees
// null inputs as CEL null and must handle them (an expression that fails
// parks the row: loud, never a silent loss). On capture, a computed field
// that reads a column missing from the row (unchanged) is left out; on
// apply, a missing field reads as null. Each evaluation is
// bounded by CostLimit; exceeding it fails the row. Values travel as their
// CEL types: string, int, double, bool, bytes, google.protobuf.Timestamp,
// null, lists; JSON documents as their text.
//
// A pair of expressions need not round-trip exactly (one that normalises
// whitespace); the engine's loop guard bounds what such a pair can write
// back.
//
// # Keys
//
// Key columns keep their values: they may be renamed, but not local,
// value-mapped, converted, computed or references. A natural key
// (KeyConfig.Natural, Map.NaturalKeys for adapters.Options.Keys) keys the
// records by columns every system holds, and the system's own primary key
// stays local. An ID map (KeyConfig.IDMap) keys records by collection keys
// minted "<prefix>:<local key>" when a record is first seen in the system,
// and the adapter's IDMapper keeps the map. A reference column
// (ColumnConfig.References) holds keys of another collection; the wrapper
// translates it through that collection's ID map.
package mapping
