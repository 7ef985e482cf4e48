"""Packaging for Hearth, the parental-filter DNS appliance."""
import re
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "resolver" / "__init__.py").read_text()).group(1)

setup(
    name="hearth-dns",
    version=VERSION,
    description="Parental-filter DNS appliance for homes and schools",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    python_requires=">=3.9",
    packages=find_packages(include=["resolver", "resolver.*", "blocklists", "blocklists.*", "webui", "webui.*",
                                    "provider", "provider.*"]),
    include_package_data=True,
    package_data={"blocklists": ["data/*", "data/**/*"],
                  "webui": ["templates/**/*", "static/**/*", "translations/**/*"],
                  "provider": ["templates/**/*", "static/*", "translations/**/*", "migrations/script.py.mako",
                               "data/*"]},
    install_requires=[
        "dnslib>=0.9.24",
        "pyyaml>=5.4",
        "flask>=2.2",
        "apscheduler>=3.9,<4",
        "requests>=2.25",
        # Production WSGI server for the web UI process: Flask's own server is for development only.
        "waitress>=2.1",
        # Ed25519 signatures of provider feeds (also packaged by Debian and OpenWrt as python3-cryptography).
        "cryptography>=3.4",
        # IDNA 2008 / UTS 46 for international names in lists (Vietnamese names with diacritics).
        "idna>=2.10",
        # Web UI: CSRF tokens on every form, Vietnamese/English catalogues, Prometheus /metrics.
        "flask-wtf>=1.1",
        "flask-babel>=3.0",
        "prometheus-client>=0.16",
        # zoneinfo database on systems without /usr/share/zoneinfo (and Python < 3.9 backport not needed).
        "tzdata; platform_system == 'Windows'",
    ],
    extras_require={
        "fast": ["uvloop>=0.17"],
        # several nodes on one PostgreSQL store (store: postgresql://...) and the provider service
        "postgres": ["psycopg[binary]>=3.1", "psycopg-pool>=3.1"],
        # the list administrators' service (`hearth provider run`): SQLAlchemy 2 models, Alembic migrations
        "provider": ["sqlalchemy>=2.0", "alembic>=1.12", "psycopg[binary]>=3.1"],
        "test": ["pytest>=7", "pytest-timeout", "ruff", "cryptography>=3.4", "uvloop>=0.17",
                 # browser tests drive Debian's chromium (no browser download)
                 "playwright>=1.40", "psycopg[binary]>=3.1", "psycopg-pool>=3.1",
                 "sqlalchemy>=2.0", "alembic>=1.12"],
    },
    # The optional UDP accelerator (recvmmsg/sendmmsg and the cache-hit loop in C, issue 19). optional=True: a
    # machine without a compiler or Python headers installs without it and runs the pure-Python path.
    # blocklists._indexscan: the block index's lookup in C (any platform; pure-Python fallback the same way).
    # -ffp-contract=off: float sums as Python computes them (no fused multiply-add), so the twins agree exactly
    ext_modules=([Extension("resolver.engine._fastpath", ["resolver/engine/_fastpath.c"], optional=True,
                            extra_compile_args=["-O2", "-ffp-contract=off"])] if sys.platform.startswith("linux")
                 else [])
    + [Extension("blocklists._indexscan", ["blocklists/_indexscan.c"], optional=True, extra_compile_args=["-O2"],
                 libraries=["m"])],
    entry_points={"console_scripts": ["hearth = resolver.cli.main:main"]},
    classifiers=[
        "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: Name Service (DNS)",
    ],
)
