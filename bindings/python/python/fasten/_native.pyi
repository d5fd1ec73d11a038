from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

MQTT_USER_PROPERTY: str
MQTT_REQ_KEY: str

class FastenError(Exception):
    kind: str
    field: Optional[str]
    var: Optional[str]

class JobRun:
    @property
    def request_id(self) -> str: ...
    def finish(self, error: Optional[str] = None) -> None: ...

class Pipeline:
    def emit(
        self,
        code: str,
        *,
        target: Optional[str] = None,
        actor: Optional[str] = None,
        actor_kind: Optional[str] = None,
        outcome: Optional[str] = None,
        method: Optional[str] = None,
        severity: Optional[str] = None,
        tenant: Optional[str] = None,
        request_id: Optional[str] = None,
        detail: Optional[Mapping[str, Any]] = None,
    ) -> str: ...
    def emit_durable(
        self,
        code: str,
        *,
        target: Optional[str] = None,
        actor: Optional[str] = None,
        actor_kind: Optional[str] = None,
        outcome: Optional[str] = None,
        method: Optional[str] = None,
        severity: Optional[str] = None,
        tenant: Optional[str] = None,
        request_id: Optional[str] = None,
        detail: Optional[Mapping[str, Any]] = None,
    ) -> str: ...
    def agent_call(
        self,
        kind: str,
        name: str,
        duration_ms: int,
        *,
        error: Optional[str] = None,
        usage_json: Optional[str] = None,
        actor: Optional[str] = None,
        actor_kind: Optional[str] = None,
        target: Optional[str] = None,
        tenant: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> str: ...
    def flush(self, timeout: float) -> None: ...
    def shutdown(self, timeout: float) -> Tuple[int, int]: ...
    def queue_stats(self) -> Dict[str, Any]: ...
    def log(
        self,
        level: str,
        message: str,
        *,
        target: str = "",
        fields: Optional[Dict[str, Any]] = None,
        request_id: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> bool: ...
    def record_api(
        self,
        request_id: str,
        method: str,
        path: str,
        status: int,
        duration_s: float,
        *,
        route: Optional[str] = None,
        bytes_in: Optional[int] = None,
        bytes_out: Optional[int] = None,
        actor: Optional[str] = None,
        target: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> None: ...
    def sys_rows(self, request_id: Optional[str] = None, limit: int = 100) -> str: ...
    def api_rows(self, request_id: Optional[str] = None, limit: int = 100) -> str: ...
    def dsn(self) -> str: ...
    def start_job(self, name: str) -> JobRun: ...

class ReaderApp:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        tokens: Optional[Sequence[str]] = None,
        delegated: bool = False,
        allow_unauthenticated: bool = False,
    ) -> None: ...
    @staticmethod
    def check_auth(
        *,
        tokens: Optional[Sequence[str]] = None,
        delegated: bool = False,
        allow_unauthenticated: bool = False,
    ) -> None: ...
    def handle(
        self, method: str, path_and_query: str, headers: List[Tuple[bytes, bytes]], body: bytes
    ) -> Tuple[int, List[Tuple[str, bytes]], bytes]: ...

def build(pairs: Sequence[Tuple[str, str]]) -> Pipeline: ...
def register(
    domain: str,
    codes: Sequence[
        Tuple[str, str, str, Optional[str], Optional[str], Optional[str], bool, Sequence[str]]
    ],
) -> None: ...
def load_codes_file(path: str) -> int: ...
def load_codes_str(origin: str, yaml: str) -> int: ...
def verify(dsn: str) -> str: ...
def parse_request_id(id: str) -> str: ...
def mint_request_id() -> str: ...
def request_id_from_headers(headers: Sequence[Tuple[bytes, bytes]]) -> Tuple[str, str]: ...
def outbound_headers(request_id: str) -> List[Tuple[str, str]]: ...
def mqtt_stamp(payload: bytes, request_id: Optional[str] = None) -> Tuple[bytes, str]: ...
def mqtt_request_id_of(
    topic: str, payload: bytes, user_properties: Sequence[Tuple[str, str]]
) -> Tuple[str, str]: ...
def canonical_json(json: str) -> str: ...
def detail_commitment(salt: str, detail_json: str) -> str: ...
def row_hash(row_json: str) -> str: ...
def env_is_known(name: str) -> bool: ...
def env_nearest(name: str) -> Optional[str]: ...
def env_names() -> List[str]: ...
def after_fork_in_child() -> None: ...
