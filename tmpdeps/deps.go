package tmpdeps

import (
	_ "github.com/google/uuid"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/hashicorp/serf/serf"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/kong/go-kong/kong"
	_ "github.com/rs/zerolog"
	_ "github.com/valyala/fasthttp"
)
