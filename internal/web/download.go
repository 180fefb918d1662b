package web

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/larder/larder"
)

// downloadHandler streams a snapshot's original file, restored and
// verified as larder restore does, with Range for resumed downloads.
//
// A restore cannot seek, so a range is served by restoring from the start,
// discarding the bytes before it, sending it, and restoring on to the end
// to check the whole file's SHA-256. The response's last byte is held back
// until that check passed: when it fails (or the restore fails after the
// headers went), the handler aborts the connection, so the client holds
// fewer bytes than Content-Length said and no browser keeps a complete
// file that is wrong. Memory is a 64 KiB buffer, whatever the size.
func (s *Server) downloadHandler(w http.ResponseWriter, req *http.Request, id *identity) {
	sn, err := s.find(req.Context(), req.PathValue("id"))
	if err != nil {
		s.downloadError(w, req, id, err)
		return
	}
	if err := sn.Usable(); err != nil {
		s.downloadError(w, req, id, fmt.Errorf("%w: %w", errNotFound, err))
		return
	}
	m := sn.Manifest
	size := int64(m.Size)
	etag := `"` + m.SHA256 + `"`
	start, end, partial, ok := parseRange(req.Header.Get("Range"), size)
	if ir := req.Header.Get("If-Range"); ir != "" && ir != etag {
		start, end, partial, ok = 0, size-1, false, true // changed (or a date): the whole file
	}
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", etag)
	if sum, err := hex.DecodeString(m.SHA256); err == nil {
		// RFC 9530: the SHA-256 of the whole file, for every range.
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	}
	if !ok {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		http.Error(w, "the range is outside the file", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": safeFileName(m.Name)}))
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	}
	if req.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	e := entry{Time: s.now(), User: id.user, Addr: id.addr, Action: "download", Target: sn.ID.Short() + " " + m.Name}
	if partial {
		e.Action = fmt.Sprintf("download bytes %d-%d", start, end)
	}
	unlock, err := s.r.ReadLock(req.Context())
	if err != nil {
		e.Result = "failed: " + err.Error()
		s.log.add(s, e)
		s.downloadError(w, req, id, err)
		return
	}
	defer unlock()
	rw := &rangeWriter{w: w, status: status, skip: start, n: end - start + 1}
	rw.buf = bufio.NewWriterSize(writerFunc(rw.send), 64<<10)
	// The download's restore reports to nobody: a drill's progress
	// (larder.WithProgress) stays its own.
	_, err = s.restore(larder.WithProgress(req.Context(), nil), s.r, sn, rw)
	if err == nil {
		err = rw.finish()
	}
	if err != nil {
		e.Result = "failed: " + err.Error()
		s.log.add(s, e)
		if !rw.started {
			s.downloadError(w, req, id, err)
			return
		}
		// The headers went: cut the connection short of Content-Length.
		panic(http.ErrAbortHandler)
	}
	e.Result = "ok, sha256 verified"
	s.log.add(s, e)
}

func (s *Server) downloadError(w http.ResponseWriter, req *http.Request, id *identity, err error) {
	if strings.HasPrefix(req.URL.Path, "/api/") {
		s.apiFail(w, err)
		return
	}
	s.failPage(w, id, err)
}

// parseRange reads a Range header of one range (bytes=A-B, A-, -N) of a
// file of size bytes, and returns the first and last byte to send and
// whether it is a partial response; ok is false for a range outside the
// file. No Range, another unit or several ranges give the whole file
// (RFC 9110 lets a server ignore Range).
func parseRange(hdr string, size int64) (start, end int64, partial, ok bool) {
	spec, found := strings.CutPrefix(hdr, "bytes=")
	if hdr == "" || !found || strings.Contains(spec, ",") {
		return 0, size - 1, false, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size - 1, false, true
	}
	if a == "" { // the last N bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, size - 1, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false
		}
		return max(0, size-n), size - 1, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, size - 1, false, true
	}
	last := size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, size - 1, false, true
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, false, false
	}
	return first, last, true, true
}

// safeFileName is the name a browser saves the download under: the
// snapshot's base name, without path separators or control characters.
func safeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '_'
		}
		return r
	}, name)
	if name == "" || name == "." || name == ".." {
		return "backup"
	}
	return name
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// rangeWriter takes the restored file and passes on the n bytes from
// offset skip, but for the last of them, which finish sends once the
// restore is verified.
type rangeWriter struct {
	w       http.ResponseWriter
	buf     *bufio.Writer
	status  int
	skip    int64 // bytes still to discard before the range
	n       int64 // bytes of the range still to pass on, the held one included
	held    []byte
	started bool // the headers went
}

func (rw *rangeWriter) Write(p []byte) (int, error) {
	total := len(p)
	if rw.skip > 0 {
		k := min(int64(len(p)), rw.skip)
		rw.skip -= k
		p = p[k:]
	}
	if rw.n > 1 && len(p) > 0 {
		k := min(int64(len(p)), rw.n-1)
		if _, err := rw.buf.Write(p[:k]); err != nil {
			return 0, err
		}
		rw.n -= k
		p = p[k:]
	}
	if rw.n == 1 && len(p) > 0 && rw.held == nil {
		rw.held = []byte{p[0]}
	}
	return total, nil
}

// send writes to the client, sending the headers first.
func (rw *rangeWriter) send(p []byte) (int, error) {
	if !rw.started {
		rw.started = true
		rw.w.WriteHeader(rw.status)
	}
	return rw.w.Write(p)
}

// finish sends the held byte: the restore was verified.
func (rw *rangeWriter) finish() error {
	if rw.n == 1 {
		if rw.held == nil {
			return errors.New("the restore ended before the range")
		}
		if _, err := rw.buf.Write(rw.held); err != nil {
			return err
		}
		rw.n = 0
	}
	if !rw.started && rw.buf.Buffered() == 0 {
		rw.started = true
		rw.w.WriteHeader(rw.status) // an empty file
	}
	return rw.buf.Flush()
}
