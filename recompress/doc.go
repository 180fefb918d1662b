// Package recompress turns a backup file into canonical, uncompressed
// streams plus a small recipe, and turns them back into the identical file.
//
// # Layers
//
// A backup is a tree of layers, detected by content (magic bytes, tar
// header checksums), never by file name:
//
//   - gzip: one or more members, each a header kept verbatim, a deflate
//     stream rebuilt by re-running the encoder that made it (package
//     recompress/deflate), and a trailer; bytes after the last member are
//     kept verbatim.
//   - tar: ustar, GNU and pax archives. A member whose data is itself gzip
//     (dump.sql.gz, NNNN.dat.gz, a nested .tar.gz) is cut out of the tar
//     stream and unpacked as a layer of its own; everything else, headers
//     and padding included, stays in the tar "skeleton" stream.
//   - anything else is copied as bytes.
//
// # Streams and recipe
//
// [Unpack] writes the canonical streams (tar skeletons, pg_dump SQL text,
// table data, JSON, raw bytes, and the bytes no engine reproduces) to a
// [Sink], one writer per stream, and returns a [Recipe]: the layer tree with
// the gzip headers, the engine parameters and the splice points. [Pack]
// reads the streams back in the same order and writes the original bytes.
// Both run with bounded memory, whatever the size of the backup.
//
// # Exact, or honestly verbatim
//
// Unpack re-runs each identified engine over the decompressed data while it
// reads, comparing every byte with the original. A member no engine
// reproduces is stored verbatim; a member that diverges late is stored as
// the exact prefix followed by its remaining compressed bytes. Damaged
// input (bad CRC, truncation, corrupt deflate, bad tar checksums) is never
// refused: the damaged part is kept verbatim and reported as a [Warning].
//
// docs/DESIGN.md shows where this package sits: the data path, what each
// package owns, and the trust rules.
package recompress
