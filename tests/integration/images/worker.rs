//! The variants job as a crashing worker meets it: leases, fencing, re-arming, giving up.

use soko::store::images::VARIANTS_JOB;
use soko::store::jobs;
use soko::workers::images::run_batch;

use super::*;

#[tokio::test]
async fn a_job_whose_worker_died_is_done_again_after_its_lease() {
    let (app, files, _dir) = spawn().await;
    let (seller, id) = seller_with_product(&app, 6).await;
    let photo = jpeg(1000, 750);
    let sha = sha_of(&photo);
    let r = upload(&seller, &app, id, photo, "p.jpg", "image/jpeg", true).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A worker claims the job and dies without finishing it.
    let dead = jobs::claim(&app.db, VARIANTS_JOB, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        run_batch(&app.db, &files).await.unwrap(),
        0,
        "leased: others keep off"
    );
    sqlx::query("UPDATE jobs SET locked_until = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        run_batch(&app.db, &files).await.unwrap(),
        1,
        "the lease ran out: picked up again"
    );
    let job = jobs::find(&app.db, VARIANTS_JOB, &sha)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("done", 2));
    assert!(files.variant(&sha, 320).is_file() && files.variant(&sha, 800).is_file());
    // The dead worker's late word changes nothing.
    assert!(!jobs::complete(&app.db, &dead[0]).await.unwrap());

    // A lost variant is made again when the work is asked for again; the other is kept.
    std::fs::remove_file(files.variant(&sha, 320)).unwrap();
    let kept = std::fs::metadata(files.variant(&sha, 800))
        .unwrap()
        .modified()
        .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    jobs::enqueue(&mut tx, VARIANTS_JOB, &sha).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(run_batch(&app.db, &files).await.unwrap(), 1);
    assert!(files.variant(&sha, 320).is_file());
    assert_eq!(
        std::fs::metadata(files.variant(&sha, 800))
            .unwrap()
            .modified()
            .unwrap(),
        kept
    );

    // Work that can never succeed (the original is gone) fails once, with the reason kept.
    let missing = "ab".repeat(32);
    let mut tx = app.db.begin().await.unwrap();
    jobs::enqueue(&mut tx, VARIANTS_JOB, &missing)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(run_batch(&app.db, &files).await.unwrap(), 1);
    let job = jobs::find(&app.db, VARIANTS_JOB, &missing)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, "failed");
    assert!(job.last_error.unwrap().contains("missing"));
}
