package gossip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Hint says that one entity changed, and under which cluster_events id.
// The receiver reads the entity from the database; a forged or replayed
// hint can therefore cost a reload, never change what is served.
type Hint struct {
	EventID int64  // cluster_events.id of the change
	Table   string // e.g. "routes"
	ID      string // entity id
	Op      string // "create", "update" or "delete"
	Origin  string // node name of the writer
}

// maxHintSize keeps hints far below serf's 512-byte user event limit.
const maxHintSize = 256

// encode renders a hint as "v1|event|table|id|op|origin".
func (h Hint) encode() []byte {
	return []byte(strings.Join([]string{"v1", strconv.FormatInt(h.EventID, 10), h.Table, h.ID, h.Op, h.Origin}, "|"))
}

func decodeHint(payload []byte) (Hint, error) {
	if len(payload) > maxHintSize {
		return Hint{}, fmt.Errorf("hint of %d bytes exceeds %d", len(payload), maxHintSize)
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 6 || parts[0] != "v1" {
		return Hint{}, errors.New("hint is not in the v1 format")
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || id < 0 {
		return Hint{}, fmt.Errorf("hint event id %q is not a number", parts[1])
	}
	return Hint{EventID: id, Table: parts[2], ID: parts[3], Op: parts[4], Origin: parts[5]}, nil
}
