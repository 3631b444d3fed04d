# Build: one compiled binary. Run: that binary alone on distroless, as a non-root user.

FROM oven/bun:1.4.5-debian AS build
WORKDIR /src
COPY package.json bun.lock bunfig.toml tsconfig.json ./
RUN bun install --frozen-lockfile
COPY src ./src
COPY workers ./workers
RUN bun build --compile --minify --sourcemap src/main.ts --outfile /out/hookgate && mkdir -p /out/spool

# glibc and nothing else: no shell, no package manager. The binary needs no node_modules beside it.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/hookgate /usr/local/bin/hookgate
# Where accepted events wait while Redis is away: mount a volume here (owned by nonroot, so a new volume is too).
COPY --from=build --chown=nonroot:nonroot /out/spool /spool
USER nonroot:nonroot
ENV PORT=3000 HOST=0.0.0.0 HOOKGATE_DATA_DIR=/tmp/hookgate SPOOL_DIR=/spool
EXPOSE 3000
# SIGTERM: stop accepting, finish in-flight requests and active jobs (SHUTDOWN_TIMEOUT_MS), exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/hookgate", "health"]
ENTRYPOINT ["/usr/local/bin/hookgate"]
# One API process per container; scale containers (or run `start` for a supervisor with API_PROCESSES children).
CMD ["api"]
