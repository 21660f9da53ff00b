"""Operations, shared by both processes: metrics kept in Redis, the dashboard's figures, start-up checks."""
