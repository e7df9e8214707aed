package admin

import "net/http"

// dbModeConfigMessage is Kong's answer to GET and POST /config when it
// runs with a database (kong/api/routes/config.lua): /config replaces the
// configuration of a DB-less node only. Grapevine always runs on
// PostgreSQL, so it answers the same; `grapevine config db_import` is the
// way to load a declarative file.
const dbModeConfigMessage = "this endpoint is only available when Kong is configured to not use a database"

// handleConfig answers /config as Kong does with database = postgres.
func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	writeMessage(w, http.StatusBadRequest, dbModeConfigMessage)
}
