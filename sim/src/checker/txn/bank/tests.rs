//! Self-tests of the bank checker.

use super::*;

fn bal(amount: i64, writer: TxnId) -> Balance {
    Balance { amount, writer }
}

fn transfer(
    id: TxnId,
    from: AccountId,
    to: AccountId,
    amount: i64,
    read: (Balance, Balance),
) -> BankTxn {
    BankTxn {
        id,
        process: id % 3,
        outcome: Outcome::Committed,
        op: BankOp::Transfer {
            from,
            to,
            amount,
            read: Some(read),
        },
    }
}

fn read(id: TxnId, balances: &[Balance]) -> BankTxn {
    let map = (0..).zip(balances.iter().copied()).collect();
    BankTxn {
        id,
        process: id % 3,
        outcome: Outcome::Committed,
        op: BankOp::Read {
            balances: Some(map),
        },
    }
}

fn with(outcome: Outcome, mut txn: BankTxn) -> BankTxn {
    txn.outcome = outcome;
    txn
}

fn config() -> BankConfig {
    BankConfig::uniform(3, 100, false)
}

fn valid_history() -> Vec<BankTxn> {
    vec![
        read(1, &[bal(100, 0), bal(100, 0), bal(100, 0)]),
        transfer(2, 0, 1, 10, (bal(100, 0), bal(100, 0))),
        read(3, &[bal(90, 2), bal(110, 2), bal(100, 0)]),
        transfer(4, 1, 2, 5, (bal(110, 2), bal(100, 0))),
        with(
            Outcome::Aborted,
            transfer(5, 2, 0, 50, (bal(105, 4), bal(90, 2))),
        ),
        with(
            Outcome::Unknown,
            transfer(6, 0, 2, 1, (bal(90, 2), bal(105, 4))),
        ),
        read(7, &[bal(90, 2), bal(105, 4), bal(105, 4)]),
    ]
}

#[test]
fn correct_history_passes() {
    let s = check(&config(), &valid_history()).expect("valid history");
    assert_eq!(s.total, 300);
    assert_eq!((s.reads_checked, s.transfers_committed), (3, 2));
    assert_eq!((s.transfers_unknown, s.aborted), (1, 1));
}

#[test]
fn observed_unknown_transfer_is_accepted() {
    let mut h = valid_history();
    h.push(read(8, &[bal(89, 6), bal(105, 4), bal(106, 6)]));
    check(&config(), &h).expect("unknown transfer may have committed");
}

#[test]
fn half_transfer_read_fails_naming_the_read() {
    let mut h = valid_history();
    h.push(read(8, &[bal(90, 2), bal(100, 0), bal(100, 0)]));
    let errors = check(&config(), &h).expect_err("fractured read");
    assert!(errors.contains(&BankError::WrongTotal {
        read: 8,
        expected: 300,
        observed: 290
    }));
    assert!(errors.contains(&BankError::FracturedRead {
        read: 8,
        transfer: 2,
        saw: 0,
        missed: 1
    }));
    assert!(
        errors.iter().all(|e| e.to_string().contains("read txn 8")),
        "{errors:?}"
    );
}

#[test]
fn balanced_but_fractured_read_is_caught() {
    // Sums to 300, yet sees transfer 4 on account 2 but not on account 1.
    let mut h = valid_history();
    h.push(read(8, &[bal(95, 0), bal(100, 0), bal(105, 4)]));
    let errors = check(&config(), &h).expect_err("fractured");
    assert!(errors.contains(&BankError::FracturedRead {
        read: 8,
        transfer: 4,
        saw: 2,
        missed: 1
    }));
    assert!(errors.contains(&BankError::WrongValue {
        txn: 8,
        account: 0,
        writer: 0,
        observed: 95,
        written: 100
    }));
}

#[test]
fn negative_balance_rejected_only_when_forbidden() {
    let h = vec![
        transfer(1, 0, 1, 150, (bal(100, 0), bal(100, 0))),
        read(2, &[bal(-50, 1), bal(250, 1), bal(100, 0)]),
    ];
    let errors = check(&config(), &h).expect_err("negative");
    assert!(errors.contains(&BankError::Negative {
        txn: 1,
        account: 0,
        amount: -50
    }));
    assert!(errors.contains(&BankError::Negative {
        txn: 2,
        account: 0,
        amount: -50
    }));
    check(&BankConfig::uniform(3, 100, true), &h).expect("negatives allowed");
}

#[test]
fn aborted_transfer_read_rejected() {
    let mut h = valid_history();
    h.push(read(9, &[bal(140, 5), bal(105, 4), bal(55, 5)]));
    let errors = check(&config(), &h).expect_err("aborted read");
    assert!(errors.contains(&BankError::AbortedWriter {
        txn: 9,
        account: 0,
        writer: 5
    }));
}

#[test]
fn unknown_writer_rejected() {
    let h = vec![read(1, &[bal(100, 0), bal(100, 42), bal(100, 0)])];
    let errors = check(&config(), &h).expect_err("garbage");
    assert_eq!(
        errors,
        vec![BankError::UnknownWriter {
            txn: 1,
            account: 1,
            writer: 42
        }]
    );
}

#[test]
fn lost_update_rejected() {
    let h = vec![
        transfer(1, 0, 1, 10, (bal(100, 0), bal(100, 0))),
        transfer(2, 0, 2, 20, (bal(100, 0), bal(100, 0))),
    ];
    let errors = check(&config(), &h).expect_err("lost update");
    assert_eq!(
        errors,
        vec![BankError::LostUpdate {
            account: 0,
            overwrote: 0,
            transfers: vec![1, 2]
        }]
    );
}

#[test]
fn incomplete_read_rejected() {
    let h = vec![read(1, &[bal(100, 0), bal(100, 0)])];
    let errors = check(&config(), &h).expect_err("incomplete");
    assert_eq!(
        errors,
        vec![BankError::IncompleteRead {
            read: 1,
            missing: vec![2],
            unexpected: vec![]
        }]
    );
}

#[test]
fn malformed_history_rejected() {
    let h = vec![
        read(0, &[]),
        transfer(1, 0, 0, 1, (bal(100, 0), bal(100, 0))),
        transfer(1, 0, 9, 1, (bal(100, 0), bal(100, 0))),
    ];
    let errors = check(&config(), &h).expect_err("malformed");
    let reasons: Vec<_> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
}

#[test]
fn simulated_serial_bank_passes() {
    let config = BankConfig::uniform(5, 50, false);
    let mut state: Vec<Balance> = vec![bal(50, 0); 5];
    let mut h = Vec::new();
    let mut seed = 12_345_u64;
    for id in 1..300 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let (from, to) = ((seed >> 33) % 5, (seed >> 40) % 5);
        if id % 4 == 0 || from == to {
            h.push(read(id, &state));
            continue;
        }
        let (f, t) = (state[from as usize], state[to as usize]);
        let amount = ((seed >> 50) % 20) as i64;
        let mut txn = transfer(id, from, to, amount, (f, t));
        if f.amount < amount {
            txn.outcome = Outcome::Aborted;
        } else {
            state[from as usize] = bal(f.amount - amount, id);
            state[to as usize] = bal(t.amount + amount, id);
        }
        h.push(txn);
    }
    let s = check(&config, &h).expect("serial bank is valid");
    assert!(s.reads_checked > 50 && s.transfers_committed > 100);
}
