package admin

// dbModeConfigMessage is Kong's answer to GET and POST /config when it
// runs with a database (kong/api/routes/config.lua): /config replaces the
// configuration of a DB-less node only (dbless.go); with PostgreSQL,
// `grapevine config db_import` is the way to load a declarative file.
const dbModeConfigMessage = "this endpoint is only available when Kong is configured to not use a database"
