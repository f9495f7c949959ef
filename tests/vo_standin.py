"""A stand-in Virtual Observatory service for the tests, since nothing here reaches the internet.

It answers the two requests pyvo 1.9.1 sends for the example notebook
(images/astro/examples/first-look.ipynb), with VOTables made by astropy.io.votable from a small
fixed catalogue of eight "Gaia DR3" sources around the demo image of M31:

- Simple Cone Search: `GET /scs?RA=<deg>&DEC=<deg>&SR=<deg>&VERB=<n>`. It returns every source
  whose real angular distance from (RA, DEC) is at most SR, with the UCDs SCS 1.03 requires
  (ID_MAIN, POS_EQ_RA_MAIN, POS_EQ_DEC_MAIN). A bad or missing parameter gives SCS's error
  VOTable (`INFO name="Error"`).
- TAP, synchronous: `POST` (or `GET`) `/tap/sync` with REQUEST=doQuery, LANG=ADQL, QUERY and
  optionally MAXREC and FORMAT. Only one ADQL shape is understood, the notebook's:

      SELECT [TOP n] col, ... FROM gaiadr3.gaia_source
      WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', ra0, dec0, radius))
            [AND col <op> number ...]
      [ORDER BY col [ASC | DESC]]

  Anything else gets TAP's error VOTable (`QUERY_STATUS` = `ERROR`, HTTP 400) saying why.

pyvo asks for nothing else: neither `/capabilities` nor `/tables` (checked against its source and
by recording its requests). Every other path is a 404.

Usage: python vo_standin.py [PORT]   (default 8080; listens on every address)
"""

import io
import math
import operator
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from astropy.coordinates import angular_separation
from astropy.io.votable.tree import Field, Info, Resource, TableElement, VOTableFile


@dataclass(frozen=True)
class Source:
    """One row of the catalogue, with Gaia DR3's column names."""

    source_id: int
    ra: float  # degrees, ICRS
    dec: float
    phot_g_mean_mag: float


# Around the centre of /data/demo/m31-demo.fits (RA 10.6847, Dec 41.2690; the image's corners are
# 45.26" away): separation from the centre and G magnitude in the comments.
CATALOGUE = (
    Source(101, 10.684700, 41.269417, 15.21),  # 1.5"
    Source(102, 10.691742, 41.272055, 17.84),  # 22.0"
    Source(103, 10.672217, 41.274416, 19.63),  # 39.0"
    Source(104, 10.690197, 41.257645, 18.42),  # 43.5"
    Source(105, 10.675924, 41.263465, 20.35),  # 31.0"
    Source(106, 10.699741, 41.262471, 16.07),  # 47.0": just outside the image's circle
    Source(107, 10.666221, 41.268999, 17.10),  # 50.0"
    Source(108, 10.913875, 41.738620, 12.02),  # 0.5 degrees
)
TABLE_NAME = "gaiadr3.gaia_source"


@dataclass(frozen=True)
class Column:
    """How a catalogue column is described in a VOTable's FIELD."""

    name: str
    datatype: str
    unit: str | None
    tap_ucd: str  # UCD1+, as TAP services give them
    scs_ucd: str  # SCS 1.03 requires the UCD1 names for the identifier and position


COLUMNS = {
    column.name: column
    for column in (
        Column("source_id", "long", None, "meta.id;meta.main", "ID_MAIN"),
        Column("ra", "double", "deg", "pos.eq.ra;meta.main", "POS_EQ_RA_MAIN"),
        Column("dec", "double", "deg", "pos.eq.dec;meta.main", "POS_EQ_DEC_MAIN"),
        Column("phot_g_mean_mag", "float", "mag", "phot.mag;em.opt", "phot.mag;em.opt"),
    )
}


class QueryError(ValueError):
    """A request this service cannot answer; the message goes back to the client."""


def in_cone(ra: float, dec: float, radius: float) -> list[Source]:
    """The catalogue's sources at most `radius` degrees from (ra, dec), nearest first."""
    def distance(source: Source) -> float:
        return math.degrees(angular_separation(*map(math.radians, (ra, dec, source.ra, source.dec))))

    return sorted((s for s in CATALOGUE if distance(s) <= radius), key=distance)


def votable_bytes(votable: VOTableFile) -> bytes:
    """The VOTable as the XML document that goes back to the client."""
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue()


def results_votable(sources: Sequence[Source], columns: Sequence[str], protocol: str, status: str | None) -> bytes:
    """A VOTable with one results table of `columns` for `sources` and, for TAP (protocol "tap"),
    the results resource's QUERY_STATUS `status` (OK, or OVERFLOW when MAXREC cut the rows)."""
    votable = VOTableFile()
    resource = Resource(type="results")
    votable.resources.append(resource)
    table = TableElement(votable, name="results")
    resource.tables.append(table)
    for name in columns:
        column = COLUMNS[name]
        ucd = column.tap_ucd if protocol == "tap" else column.scs_ucd
        table.fields.append(Field(votable, name=name, datatype=column.datatype, unit=column.unit, ucd=ucd))
    table.create_arrays(len(sources))
    for row, source in enumerate(sources):
        table.array[row] = tuple(getattr(source, name) for name in columns)
    if status:
        resource.infos.append(Info(name="QUERY_STATUS", value=status))
    return votable_bytes(votable)


def error_votable(message: str, protocol: str) -> bytes:
    """The error document of the protocol: TAP's QUERY_STATUS=ERROR in the results resource, SCS's
    INFO named Error just below the root."""
    votable = VOTableFile()
    if protocol == "tap":
        resource = Resource(type="results")
        votable.resources.append(resource)
        info = Info(name="QUERY_STATUS", value="ERROR")
        info.content = message
        resource.infos.append(info)
    else:
        votable.infos.append(Info(ID="Error", name="Error", value=message))
    return votable_bytes(votable)


def number(params: dict[str, str], name: str) -> float:
    """The request parameter `name` as a number, or a QueryError saying what is wrong with it."""
    if name not in params:
        raise QueryError(f"The parameter {name} is missing.")
    try:
        return float(params[name])
    except ValueError:
        raise QueryError(f"The parameter {name} must be a number, not {params[name]!r}.") from None


def cone_search(params: dict[str, str]) -> bytes:
    """SCS: every source within SR degrees of (RA, DEC), all columns whatever VERB says."""
    ra, dec, radius = (number(params, name) for name in ("RA", "DEC", "SR"))
    if not (0 <= ra <= 360 and -90 <= dec <= 90 and radius >= 0):
        raise QueryError(f"RA={ra}, DEC={dec}, SR={radius} is not a cone on the sky.")
    return results_votable(in_cone(ra, dec, radius), list(COLUMNS), "scs", None)


NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
SELECT = re.compile(
    r"""\s*SELECT\s+(?:TOP\s+(?P<top>\d+)\s+)?(?P<columns>.+?)\s+FROM\s+(?P<table>[\w.]+)
        \s+WHERE\s+(?P<where>.+?)
        (?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<direction>ASC|DESC))?)?\s*;?\s*""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
CONE = re.compile(
    rf"""(?P<lhs>1\s*=\s*)?CONTAINS\s*\(\s*POINT\s*\(\s*'ICRS'\s*,\s*ra\s*,\s*dec\s*\)\s*,
        \s*CIRCLE\s*\(\s*'ICRS'\s*,\s*(?P<ra>{NUMBER})\s*,\s*(?P<dec>{NUMBER})\s*,\s*(?P<radius>{NUMBER})\s*\)\s*\)
        (?(lhs)|\s*=\s*1)""",
    re.IGNORECASE | re.VERBOSE,
)
COMPARISON = re.compile(rf"(?P<column>\w+)\s*(?P<op><=|>=|<|>|=)\s*(?P<value>{NUMBER})")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq,
}


@dataclass(frozen=True)
class Select:
    """The one ADQL query shape this service understands, parsed."""

    columns: list[str]
    top: int | None
    cone: tuple[float, float, float]
    conditions: list[tuple[str, Callable[[float, float], bool], float]]
    order: str | None
    descending: bool


def known_column(name: str) -> str:
    """The catalogue's name of column `name` (ADQL names are case-insensitive)."""
    if name.lower() not in COLUMNS:
        raise QueryError(f"Unknown column {name!r}; {TABLE_NAME} has {', '.join(COLUMNS)}.")
    return name.lower()


def parse_select(query: str) -> Select:
    """The query as a Select, or a QueryError saying what this stand-in does not understand."""
    match = SELECT.fullmatch(query)
    if not match:
        raise QueryError("Only SELECT [TOP n] columns FROM table WHERE CONTAINS(...) ... is understood here.")
    if match["table"].lower() != TABLE_NAME:
        raise QueryError(f"Unknown table {match['table']!r}; the only table is {TABLE_NAME}.")
    names = [name.strip() for name in match["columns"].split(",")]
    columns = list(COLUMNS) if names == ["*"] else [known_column(name) for name in names]
    cone, conditions = None, []
    for term in re.split(r"\s+AND\s+", match["where"].strip(), flags=re.IGNORECASE):
        if found := CONE.fullmatch(term):
            if cone:
                raise QueryError("Only one CONTAINS(POINT, CIRCLE) is understood here.")
            cone = (float(found["ra"]), float(found["dec"]), float(found["radius"]))
        elif found := COMPARISON.fullmatch(term):
            conditions.append((known_column(found["column"]), OPERATORS[found["op"]], float(found["value"])))
        else:
            raise QueryError(f"Cannot understand the condition {term!r}.")
    if not cone:
        raise QueryError("The WHERE clause needs 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', ra, dec, radius)).")
    return Select(
        columns=columns,
        top=int(match["top"]) if match["top"] else None,
        cone=cone,
        conditions=conditions,
        order=known_column(match["order"]) if match["order"] else None,
        descending=(match["direction"] or "").upper() == "DESC",
    )


def run_select(select: Select) -> list[Source]:
    """The rows of the query: in its cone, meeting its conditions, in its order, at most TOP."""
    rows = [
        source for source in in_cone(*select.cone)
        if all(compare(getattr(source, column), value) for column, compare, value in select.conditions)
    ]
    if select.order:
        rows.sort(key=lambda source: getattr(source, select.order), reverse=select.descending)
    return rows[: select.top] if select.top is not None else rows


def tap_sync(params: dict[str, str]) -> bytes:
    """TAP sync doQuery in ADQL: the rows of the query, truncated at MAXREC (then OVERFLOW)."""
    if params.get("REQUEST", "doQuery") != "doQuery":
        raise QueryError(f"REQUEST={params['REQUEST']} is not supported; only doQuery.")
    if params.get("LANG", "").upper() != "ADQL":
        raise QueryError(f"LANG={params.get('LANG')!r} is not supported; only ADQL.")
    if params.get("FORMAT", "votable").lower() not in ("votable", "application/x-votable+xml", "text/xml"):
        raise QueryError(f"FORMAT={params['FORMAT']} is not supported; only votable.")
    if "QUERY" not in params:
        raise QueryError("The parameter QUERY is missing.")
    select = parse_select(params["QUERY"])
    rows = run_select(select)
    maxrec = int(number(params, "MAXREC")) if "MAXREC" in params else None
    if maxrec is not None and len(rows) > maxrec:
        return results_votable(rows[:maxrec], select.columns, "tap", "OVERFLOW")
    return results_votable(rows, select.columns, "tap", "OK")


ENDPOINTS: dict[str, tuple[str, Callable[[dict[str, str]], bytes]]] = {
    "/scs": ("scs", cone_search),
    "/tap/sync": ("tap", tap_sync),
}


class Handler(BaseHTTPRequestHandler):
    """GET and POST on the endpoints above; parameter names are case-insensitive, as in DAL."""

    def do_GET(self) -> None:
        self.answer(b"")

    def do_POST(self) -> None:
        self.answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def answer(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path not in ENDPOINTS:
            self.reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        protocol, endpoint = ENDPOINTS[url.path]
        params = {
            name.upper(): values[-1]
            for text in (url.query, body.decode())
            for name, values in parse_qs(text, keep_blank_values=True).items()
        }
        try:
            self.reply(HTTPStatus.OK, endpoint(params))
        except QueryError as error:
            # SCS reports errors in an ordinary (200) response; TAP may use an HTTP error code.
            status = HTTPStatus.BAD_REQUEST if protocol == "tap" else HTTPStatus.OK
            self.reply(status, error_votable(str(error), protocol))

    def reply(self, status: HTTPStatus, body: bytes, content_type: str = "application/x-votable+xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str]) -> None:
    """Serve until stopped (tini passes the service's SIGTERM on)."""
    port = int(argv[1]) if len(argv) > 1 else 8080
    server = ThreadingHTTPServer(("", port), Handler)
    print(f"VO stand-in listening on port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
