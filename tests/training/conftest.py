"""A small synthetic data set with learnable structure (items follow each other in loops; gender and age
depend on where a user's loop lies), written in the generic folder format so the CLI can read it by path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

N_ITEMS = 16
N_USERS = 48


def write_synthetic(folder: Path, n_users: int = N_USERS, n_items: int = N_ITEMS, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows, users = ["user_id,item_id,timestamp"], ["user_id,age,gender,occupation"]
    for u in range(1, n_users + 1):
        low = u % 2 == 0  # half the users live in items 1..N/2, the others in N/2+1..N
        start = int(rng.integers(1, n_items // 2 + 1))
        length = int(rng.integers(5, 14))
        for t in range(length):
            item = (start + t - 1) % (n_items // 2) + 1 + (0 if low else n_items // 2)
            if rng.random() < 0.1:
                item = int(rng.integers(1, n_items + 1))
            rows.append(f"u{u},i{item},{t}")
        age = int(rng.integers(18, 30)) if low else int(rng.integers(40, 60))
        users.append(f"u{u},{age},{'M' if low else 'F'},{'student' if low else 'engineer'}")
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    (folder / "users.csv").write_text("\n".join(users) + "\n")
    return folder


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("data") / "synth")


@pytest.fixture(scope="session")
def synth(synth_dir):
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset(str(synth_dir))
    return ds, leave_one_out(ds)


TINY_MODEL = {"max_len": 8, "hidden": 16, "n_heads": 2, "dropout": 0.1}
