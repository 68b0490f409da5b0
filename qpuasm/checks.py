"""placeholder"""
from dataclasses import dataclass
@dataclass
class Diagnostic:
    rule: int; address: int; severity: str; message: str; text: str = ""
def check(words): return []
def format_diagnostic(d, with_address=True): return d.message
