package web

import (
	"net/http"
)

// siteInfo is one line of /api/sites.
type siteInfo struct {
	Site      string `json:"site"`
	Snapshots int    `json:"snapshots"`
	Bytes     uint64 `json:"bytes"`
	Stored    uint64 `json:"stored"`
	Newest    string `json:"newest,omitempty"` // the newest snapshot's ID
}

func (s *Server) apiSites(w http.ResponseWriter, req *http.Request, id *identity) {
	rows, err := s.statusRows(req)
	if err != nil {
		s.apiFail(w, err)
		return
	}
	out := make([]siteInfo, 0, len(rows))
	for _, r := range rows {
		si := siteInfo{Site: r.Site, Snapshots: r.Snapshots, Bytes: r.Bytes, Stored: r.Stored}
		if r.Newest != nil {
			si.Newest = r.Newest.ID
		}
		out = append(out, si)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiStatus(w http.ResponseWriter, req *http.Request, id *identity) {
	rows, err := s.statusRows(req)
	if err != nil {
		s.apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rows)
}

func (s *Server) apiSnapshots(w http.ResponseWriter, req *http.Request, id *identity) {
	c, err := s.readCatalog(req.Context(), false)
	if err != nil {
		s.apiFail(w, err)
		return
	}
	site := req.URL.Query().Get("site")
	var out []*snapshotInfo
	if !req.URL.Query().Has("site") {
		out = c.site("")
	} else {
		for _, sn := range c.site("") {
			if sn.Site == site {
				out = append(out, sn)
			}
		}
	}
	if out == nil {
		out = []*snapshotInfo{}
	}
	writeJSON(w, http.StatusOK, out)
}

// snapshotDetail is /api/snapshots/{id}: the snapshot and its drills.
type snapshotDetail struct {
	snapshotInfo
	Drills []drillInfo `json:"drills"`
}

func (s *Server) apiSnapshot(w http.ResponseWriter, req *http.Request, id *identity) {
	sn, err := s.find(req.Context(), req.PathValue("id"))
	if err != nil {
		s.apiFail(w, err)
		return
	}
	c, err := s.readCatalog(req.Context(), true)
	if err != nil {
		s.apiFail(w, err)
		return
	}
	d := snapshotDetail{snapshotInfo: *describe(sn, c.names), Drills: c.drillsOf(&sn.ID)}
	if d.Drills == nil {
		d.Drills = []drillInfo{}
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) apiDrills(w http.ResponseWriter, req *http.Request, id *identity) {
	c, err := s.readCatalog(req.Context(), true)
	if err != nil {
		s.apiFail(w, err)
		return
	}
	out := c.drillsOf(nil)
	if out == nil {
		out = []drillInfo{}
	}
	writeJSON(w, http.StatusOK, out)
}
