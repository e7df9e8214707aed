//go:build !linux

package node

// raiseNofile has no descriptor limit to raise here; 0 means unknown.
func raiseNofile(int) (int, error) { return 0, nil }
