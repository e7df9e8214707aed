package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Cluster is the node's view of the cluster, served under /cluster. The
// node implements it over the gossip layer; the Admin API only renders it.
type Cluster interface {
	Status(ctx context.Context) (ClusterStatus, error)
	// ForceLeave removes a failed member; ErrNodeNotFound / ErrNodeNotFailed.
	ForceLeave(ctx context.Context, name string) error
	Reachability(ctx context.Context) (Reachability, error)
	// Keys runs a keyring operation: "list", "install", "use" or "remove".
	Keys(ctx context.Context, op, key string) (KeyReport, error)
}

var (
	// ErrNodeNotFound: no member of that name.
	ErrNodeNotFound = errors.New("no cluster node of that name")
	// ErrNodeNotFailed: force-leave refused for a member that is up.
	ErrNodeNotFailed = errors.New("only failed nodes can be removed")
	// ErrGossipOff: the node runs with cluster_listen = off.
	ErrGossipOff = errors.New("gossip is off on this node (cluster_listen = off)")
)

// ClusterStatus is GET /cluster.
type ClusterStatus struct {
	Node             string          `json:"node"`
	ConfigHash       string          `json:"config_hash"`
	ConfigHashAgreed bool            `json:"config_hash_agreed"`
	Gossip           bool            `json:"gossip"`
	Members          []ClusterMember `json:"data"`
}

// ClusterMember is one node in GET /cluster.
type ClusterMember struct {
	Name          string `json:"name"`
	ClusterAddr   string `json:"cluster_address"`
	ProxyAddr     string `json:"proxy_address"`
	AdminAddr     string `json:"admin_address"`
	Status        string `json:"status"`
	ConfigHash    string `json:"config_hash"`
	LastAppliedAt *int64 `json:"last_applied_at"` // unix milliseconds, null if unknown
	Version       string `json:"version"`
}

// Reachability is GET /cluster/reachability.
type Reachability struct {
	Acked    []string `json:"acked"`
	Answered []string `json:"answered"`
	Missing  []string `json:"missing"`
}

// KeyReport is the answer to a keyring operation.
type KeyReport struct {
	Nodes     int               `json:"nodes"`
	Responses int               `json:"responses"`
	Errors    map[string]string `json:"errors"`
	Keys      map[string]int    `json:"keys,omitempty"`
	Primary   map[string]int    `json:"primary_keys,omitempty"`
}

// matchCluster routes /cluster, /cluster/nodes/{name},
// /cluster/reachability and /cluster/keys[/{op}].
func (s *Server) matchCluster(segs []string) methods {
	if segs[0] != "cluster" {
		return nil
	}
	switch {
	case len(segs) == 1:
		return methods{http.MethodGet: s.handleClusterStatus}
	case len(segs) == 3 && segs[1] == "nodes":
		name := segs[2]
		return methods{http.MethodDelete: func(w http.ResponseWriter, r *http.Request) { s.handleForceLeave(w, r, name) }}
	case len(segs) == 2 && segs[1] == "reachability":
		return methods{http.MethodGet: s.handleReachability}
	case len(segs) == 2 && segs[1] == "keys":
		return methods{
			http.MethodGet:  func(w http.ResponseWriter, r *http.Request) { s.handleKeys(w, r, "list") },
			http.MethodPost: func(w http.ResponseWriter, r *http.Request) { s.handleKeys(w, r, "install") },
		}
	case len(segs) == 3 && segs[1] == "keys" && (segs[2] == "use" || segs[2] == "remove"):
		op := segs[2]
		return methods{http.MethodPost: func(w http.ResponseWriter, r *http.Request) { s.handleKeys(w, r, op) }}
	}
	return nil
}

func (s *Server) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Cluster == nil {
		s.writeError(w, r, ErrGossipOff)
		return
	}
	status, err := s.cfg.Cluster.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, status)
}

func (s *Server) handleForceLeave(w http.ResponseWriter, r *http.Request, name string) {
	if s.cfg.Cluster == nil {
		s.writeError(w, r, ErrGossipOff)
		return
	}
	if err := s.cfg.Cluster.ForceLeave(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeNoContent(w)
}

func (s *Server) handleReachability(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Cluster == nil {
		s.writeError(w, r, ErrGossipOff)
		return
	}
	report, err := s.cfg.Cluster.Reachability(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report)
}

// handleKeys runs a keyring operation; all but list take {"key": "<base64>"}.
func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request, op string) {
	if s.cfg.Cluster == nil {
		s.writeError(w, r, ErrGossipOff)
		return
	}
	var body struct {
		Key string `json:"key"`
	}
	if op != "list" {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil || strings.TrimSpace(body.Key) == "" {
			writeMessage(w, http.StatusBadRequest, `expected a JSON body {"key": "<base64 key>"}`)
			return
		}
	}
	report, err := s.cfg.Cluster.Keys(r.Context(), op, body.Key)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": err.Error(), "report": report})
		return
	}
	writeJSON(w, http.StatusOK, report)
}
