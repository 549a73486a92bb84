# Authority in a container: `docker build -t authority .` then
#   docker run -p 8000:8000 -e AUTHORITY_ISSUER=https://id.example.gov \
#     -e AUTHORITY_KEYSTORE_PASSPHRASE=... -v authority-var:/srv/authority/var \
#     -v authority-keys:/srv/authority/keys authority
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUTHORITY_LOG_FORMAT=json

RUN groupadd --system authority \
 && useradd --system --gid authority --home-dir /srv/authority --shell /usr/sbin/nologin authority

WORKDIR /build
COPY pyproject.toml README.md ./
COPY authority ./authority
COPY migrations ./migrations
RUN pip install . && rm -rf /build

WORKDIR /srv/authority
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p var keys && chmod 0700 var keys && chown -R authority:authority /srv/authority
USER authority
VOLUME ["/srv/authority/var", "/srv/authority/keys"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["--host", "0.0.0.0", "--port", "8000"]
