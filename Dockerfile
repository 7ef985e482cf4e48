# Hearth in a container (optional: the Debian installer and the OpenWrt package are the main paths).
#   docker build -t hearth .
#   docker compose -f deploy/docker-compose.yml up -d      # host networking, see docs/deploy.md
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEARTH_CONFIG=/etc/hearth/hearth.yaml

# iproute2: `ip neigh` tells Hearth the MAC address of LAN clients (with host networking);
# libcap2-bin: setcap, so the unprivileged user can bind ports 53 and 80.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10053 --user-group --home-dir /var/lib/hearth --shell /usr/sbin/nologin hearth \
 && install -d -o hearth -g hearth -m 0750 /var/lib/hearth \
 && install -d -m 0755 /etc/hearth

# gcc and libc6-dev only while pip builds the compiled accelerator (resolver/engine/_fastpath.c; the
# image's Python has its headers), removed in the same layer; the build fails if it did not compile.
COPY . /src
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir --disable-pip-version-check '/src[fast]' \
 && python -c 'from resolver.engine import accel; assert accel.fastpath is not None, "accelerator not built"' \
 && apt-get purge -y --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* /src \
 && setcap cap_net_bind_service=+ep "$(readlink -f /usr/local/bin/python3)"
COPY deploy/docker/hearth.yaml /etc/hearth/hearth.yaml

USER hearth
WORKDIR /var/lib/hearth
VOLUME ["/var/lib/hearth"]
EXPOSE 53/udp 53/tcp 80/tcp

# unhealthy when the engine stops answering DNS or the web UI stops answering /healthz
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
  CMD ["hearth", "doctor", "--only", "engine", "--only", "web", "--timeout", "3"]

ENTRYPOINT ["hearth"]
CMD ["run"]
