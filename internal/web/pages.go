package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/larder/larder"
	"github.com/larder/larder/repo"
)

// siteStatus is a site's health, as larder status --json prints it
// (message type site_status, without message_type).
type siteStatus struct {
	Site      string     `json:"site"`
	Snapshots int        `json:"snapshots"`
	Rejected  int        `json:"rejected,omitempty"`
	Newest    *newest    `json:"newest,omitempty"`
	LastDrill *lastDrill `json:"last_drill,omitempty"`
	// Bytes and Stored: the originals' sizes and the bytes their
	// ingests added to the repository, over the site's snapshots.
	Bytes  uint64 `json:"bytes"`
	Stored uint64 `json:"stored"`
}

type newest struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	BackupTime time.Time `json:"backup_time"`
	AgeSeconds int64     `json:"age_seconds"`
	Exact      bool      `json:"exact"`
	Damaged    bool      `json:"damaged"`
}

type lastDrill struct {
	Snapshot   string    `json:"snapshot"`
	Time       time.Time `json:"time"`
	AgeSeconds int64     `json:"age_seconds"`
	OK         bool      `json:"ok"`
	Postgres   bool      `json:"postgres"`
	Error      string    `json:"error,omitempty"`
}

// statusRows is larder.Status as rows, with each site's byte totals.
func (s *Server) statusRows(req *http.Request) ([]siteStatus, error) {
	sites, _, err := larder.Status(req.Context(), s.r)
	if err != nil {
		return nil, err
	}
	snaps, err := s.r.Snapshots(req.Context(), true)
	if err != nil {
		return nil, err
	}
	now := s.now()
	rows := make([]siteStatus, 0, len(sites))
	for _, st := range sites {
		j := siteStatus{Site: st.Site, Snapshots: st.Snapshots, Rejected: st.Rejected}
		if n := st.Newest; n != nil && n.Manifest != nil {
			j.Newest = &newest{ID: n.ID.String(), Name: n.Manifest.Name, BackupTime: n.Made(),
				AgeSeconds: int64(st.Age(now) / time.Second), Exact: st.Exact, Damaged: st.Damaged}
		}
		if d := st.LastDrill; d != nil {
			j.LastDrill = &lastDrill{Snapshot: d.Snapshot.String(), Time: d.Time, AgeSeconds: int64(now.Sub(d.Time) / time.Second),
				OK: d.OK, Postgres: d.Postgres != nil, Error: d.Error}
		}
		for _, sn := range snaps {
			if sn.SiteName() == st.Site && sn.Manifest != nil && sn.Usable() == nil {
				j.Bytes += sn.Manifest.Size
				j.Stored += sn.Manifest.Stats.NewStored
			}
		}
		rows = append(rows, j)
	}
	return rows, nil
}

func (s *Server) sitesPage(w http.ResponseWriter, req *http.Request, id *identity) {
	rows, err := s.statusRows(req)
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	s.render(w, id, http.StatusOK, "sites", "Sites", rows)
}

func (s *Server) sitePage(w http.ResponseWriter, req *http.Request, id *identity) {
	site := req.PathValue("site")
	if site == noSite {
		site = ""
	}
	c, err := s.readCatalog(req.Context(), false)
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	snaps := c.site(site)
	if len(snaps) == 0 {
		s.errorPage(w, id, http.StatusNotFound, "no snapshot of this site")
		return
	}
	data := struct {
		Site      string
		Snapshots []*snapshotInfo
		Chart     *chart
		Forgot    bool
	}{site, snaps, makeChart(snaps), req.URL.Query().Get("forgot") != ""}
	s.render(w, id, http.StatusOK, "site", "Site "+site, data)
}

func (s *Server) snapshotPage(w http.ResponseWriter, req *http.Request, id *identity) {
	sn, err := s.find(req.Context(), req.PathValue("id"))
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	c, err := s.readCatalog(req.Context(), true)
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	info := describe(sn, c.names)
	data := struct {
		S        *snapshotInfo
		Drills   []drillInfo
		Next     *snapshotInfo // the writer's next snapshot in its chain
		Download string
	}{S: info, Drills: c.drillsOf(&sn.ID), Download: "/snapshots/" + info.ID + "/download"}
	for _, o := range c.snaps {
		if o.Envelope.Writer == sn.Envelope.Writer && o.Envelope.Seq > 1 && o.Envelope.Prev == sn.ID {
			data.Next = describe(o, c.names)
		}
	}
	s.render(w, id, http.StatusOK, "snapshot", "Snapshot "+info.Short(), data)
}

func (s *Server) forgetPage(w http.ResponseWriter, req *http.Request, id *identity) {
	sn, err := s.find(req.Context(), req.PathValue("id"))
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	s.render(w, id, http.StatusOK, "forget", "Forget a snapshot", describe(sn, nil))
}

// forget removes one snapshot (the confirmation page's form), recording
// it in a signed forget record; prune frees its space later.
func (s *Server) forget(w http.ResponseWriter, req *http.Request, id *identity) {
	sn, err := s.find(req.Context(), req.PathValue("id"))
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	e := entry{Time: s.now(), User: id.user, Addr: id.addr, Action: "forget", Target: sn.ID.Short() + " " + sn.Manifest.Name}
	if req.PostFormValue("confirm") != "yes" {
		s.errorPage(w, id, http.StatusBadRequest, "forgetting needs the confirmation box ticked")
		return
	}
	if err := s.r.ForgetIDs(req.Context(), []repo.ID{sn.ID}); err != nil {
		e.Result = "failed: " + err.Error()
		s.log.add(s, e)
		s.failPage(w, id, err)
		return
	}
	e.Result = "ok"
	s.log.add(s, e)
	http.Redirect(w, req, siteURL(sn.SiteName())+"?forgot=1", http.StatusSeeOther)
}

func (s *Server) activityPage(w http.ResponseWriter, req *http.Request, id *identity) {
	events, err := s.activity(req.Context())
	if err != nil {
		s.failPage(w, id, err)
		return
	}
	data := struct {
		Jobs   []jobView
		Events []entry
		Log    string
	}{s.jobs.recentViews(), events, s.log.path}
	s.render(w, id, http.StatusOK, "activity", "Activity", data)
}

// noSite stands for the site of snapshots that name none (no valid site
// name has parentheses).
const noSite = "(none)"

// siteURL is a site's page.
func siteURL(site string) string {
	if site == "" {
		site = noSite
	}
	return "/sites/" + url.PathEscape(site)
}
